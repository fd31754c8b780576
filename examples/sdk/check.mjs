// What a backend does with @runrelay/sdk, run the same way on Node 20 and 22, Deno, Bun and in a
// Cloudflare Worker (test/packages/sdk.test.ts). It returns what each step saw.
//   env: RUNRELAY_URL, RUNRELAY_KEY (an API key), RUNRELAY_WORKFLOW (a workflow that completes),
//        RUNRELAY_FAILING (one that fails), RUNRELAY_SLOW (one that runs for a minute), optionally RUNRELAY_WEBHOOK (a delivery to verify, as JSON:
//        { secret, body, headers }).
import { createRunRelay, isTerminal, RunRelayError, verifyWebhook } from '@runrelay/sdk'

/** Run every helper against a live server; resolves to a JSON-able report. */
export async function check(env, runtime) {
  const rr = createRunRelay({ url: env.RUNRELAY_URL, key: env.RUNRELAY_KEY })
  const wf = env.RUNRELAY_WORKFLOW
  const out = { runtime }

  const me = await rr.api.GET('/v1/me')
  out.tenant = me.data?.tenant_id ?? null

  // A browser token that may start one run: the first trigger is accepted, the second refused.
  const starter = await rr.tokens.trigger({ workflowId: wf, maxRuns: 1, ttlSeconds: 300 })
  const byToken = () => fetch(`${env.RUNRELAY_URL}/v1/workflows/${wf}/runs`, { method: 'POST', headers: { authorization: `Bearer ${starter.token}`, 'content-type': 'application/json' }, body: '{}' })
  out.triggerToken = { first: (await byToken()).status, second: (await byToken()).status, maxRuns: starter.trigger?.max_runs }

  // Trigger and wait; the same Idempotency-Key answers the same run.
  const key = `sdk-${runtime}-${Date.now()}`
  const polls = []
  const done = await rr.runs.triggerAndWait(wf, { variables: { from: runtime }, idempotencyKey: key, intervalMs: 200, timeoutMs: 30_000, onPoll: (r) => polls.push(r.status) })
  out.completed = { status: done.status, terminal: isTerminal(done.status), sawPolls: polls.length > 0, result: done.result !== null }
  out.sameRun = (await rr.runs.trigger(wf, { variables: { from: runtime }, idempotencyKey: key })).id === done.id

  // A read-only token for that run reads it, and nothing else.
  const reader = await rr.tokens.subscriber({ runIds: [done.id], ttlSeconds: 60 })
  const read = await fetch(`${env.RUNRELAY_URL}/v1/runs/${done.id}`, { headers: { authorization: `Bearer ${reader.token}` } })
  out.subscriberToken = { status: read.status, runs: reader.scope.run_ids }

  // The typed history: data is an EventList.
  const events = await rr.api.GET('/v1/runs/{id}/events', { params: { path: { id: done.id } } })
  out.events = { count: events.data.events.length, last: events.data.events.at(-1).status, seqs: events.data.events.every((e, i) => e.seq === i + 1) }

  const failed = await rr.runs.triggerAndWait(env.RUNRELAY_FAILING, { intervalMs: 200, timeoutMs: 30_000 })
  out.failed = failed.status

  try { await rr.runs.get('run_does_not_exist'); out.notFound = 'no error' } catch (err) {
    out.notFound = { isRunRelayError: err instanceof RunRelayError, status: err.status, code: err.code }
  }
  // A run that outlasts the wait: the helper gives up with wait_timeout, the run is canceled.
  const slow = await rr.runs.trigger(env.RUNRELAY_SLOW)
  try { await rr.runs.waitFor(slow.id, { timeoutMs: 300, intervalMs: 100 }); out.waitTimeout = 'no error' } catch (err) { out.waitTimeout = err.code }
  out.canceled = (await rr.runs.cancel(slow.id, 'sdk check done')).status

  if (env.RUNRELAY_WEBHOOK) {
    const { secret, body, headers } = JSON.parse(env.RUNRELAY_WEBHOOK)
    const event = verifyWebhook(secret, body, headers)
    let tampered
    try { verifyWebhook(secret, body.replace('"run.', '"xun.'), headers); tampered = 'accepted' } catch (err) { tampered = err.code }
    out.webhook = { type: event.type, run: event.data.event.run_id, tampered }
  }
  return out
}
