/**
 * Upstream misbehaviour, driven by a script per run on a fake upstream: every run ends in
 * the right state with the reason recorded; no call comes sooner than a Retry-After; a
 * connection's rate budget holds across all of its runs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { genericWorkflowConfig, startGenericUpstream, type GenericUpstream, type Step } from '../fakes/generic-upstream.ts'
import { createTenant, startTestServer, until, type TestServer } from '../helpers/server.ts'
import { recordFigures } from './figures.ts'

const TIMEOUT_MS = 500

describe('reliability: upstream faults', () => {
  let server: TestServer
  let upstream: GenericUpstream
  let client: Awaited<ReturnType<typeof createTenant>>['client']
  const figures: Record<string, unknown> = {}

  const workflow = async (connectionId: string, policy: Record<string, number> = {}) => {
    const wf = await client.post('/v1/workflows', {
      name: 'faulty', connection_id: connectionId, upstream_workflow_id: 'jobs', config: genericWorkflowConfig, input_template: { script: '{{script}}' },
      poll_policy: { first_interval_ms: 100, max_interval_ms: 300, max_transient_errors: 8, ...policy },
    })
    expect(wf.status, JSON.stringify(wf.body)).toBe(201)
    return wf.body.id as string
  }
  const connection = async (base_url: string, extra: Record<string, unknown> = {}) => {
    const conn = await client.post('/v1/connections', { name: 'fake', provider: 'http', base_url, ...extra })
    expect(conn.status, JSON.stringify(conn.body)).toBe(201)
    return conn.body.id as string
  }
  const finished = (id: string, ms = 15_000) => until(async () => {
    const r = await client.get(`/v1/runs/${id}`)
    return r.body.finished_at ? r.body : null
  }, ms, `run ${id} to finish`)
  const history = async (id: string) => (await client.get(`/v1/runs/${id}/events?limit=1000`)).body.events as any[]

  beforeAll(async () => {
    upstream = await startGenericUpstream()
    server = await startTestServer({ RUNRELAY_UPSTREAM_TIMEOUT_MS: String(TIMEOUT_MS), RUNRELAY_RATE_LIMIT_PER_MINUTE: '0' })
    client = (await createTenant(server, 'faults')).client
  })
  afterAll(async () => {
    await server?.stop()
    await upstream?.close()
    recordFigures('upstream_faults', figures)
  })

  it('ends every scripted run in the right state, with the reason recorded', async () => {
    const wf = await workflow(await connection(upstream.url))
    const done: Step = { status: 'completed', result: { ok: true } }
    const cases: Array<{ name: string; script: Step[]; status: string; check: (run: any, events: any[]) => void }> = [
      { name: '5xx_burst', script: [{ http: 500 }, { http: 502 }, { http: 503 }, { http: 504 }, { status: 'running' }, done], status: 'completed',
        check: (_r, ev) => expect(ev.filter((e) => e.type === 'run.error').map((e) => e.data.error.status)).toEqual([500, 502, 503, 504]) },
      { name: 'hanging_response', script: [{ hang: true }, done], status: 'completed',
        check: (_r, ev) => expect(ev.find((e) => e.type === 'run.error').data.error.code).toBe('upstream_timeout') },
      { name: 'connection_reset', script: [{ reset: true }, { reset: true }, done], status: 'completed',
        check: (_r, ev) => expect(ev.filter((e) => e.type === 'run.error').map((e) => e.data.error.code)).toEqual(['upstream_network_error', 'upstream_network_error']) },
      { name: 'malformed_json', script: [{ malformed: true }, done], status: 'completed',
        check: (_r, ev) => expect(ev.find((e) => e.type === 'run.error').data.error.code).toBe('upstream_malformed') },
      { name: 'truncated_json', script: [{ truncated: true }, done], status: 'completed',
        check: (_r, ev) => expect(ev.find((e) => e.type === 'run.error').data.error.code).toMatch(/^upstream_(network_error|malformed)$/) },
      { name: 'status_goes_backwards', script: [{ status: 'running' }, { status: 'pending' }, { status: 'running' }, done], status: 'completed',
        check: (_r, ev) => expect(ev.filter((e) => e.type === 'run.status_changed').map((e) => e.data.to)).toEqual(['running', 'completed']) },
      { name: 'unknown_status', script: [{ status: 'reticulating' }, { status: 'reticulating' }, done], status: 'completed',
        check: (r) => expect(r.upstream_status).toBe('completed') },
      { name: 'upstream_failed', script: [{ status: 'running' }, { status: 'failed', error: 'disk full' }], status: 'failed',
        check: (r) => expect(r.error).toMatchObject({ code: 'upstream_failed', message: 'disk full' }) },
      { name: 'final_4xx', script: [{ http: 404 }], status: 'failed',
        check: (r, ev) => { expect(r.error.code).toBe('upstream_http_404'); expect(ev.at(-1).data.reason).toBe('upstream_error') } },
      { name: 'endless_5xx', script: [{ http: 503 }], status: 'failed',
        check: (r, ev) => { expect(r.error.message).toMatch(/gave up after 8 transient errors/); expect(ev.at(-1).data.reason).toBe('too_many_transient_errors') } },
    ]
    const started = Date.now()
    const runs = await Promise.all(cases.map(async (c) => {
      const res = await client.post(`/v1/workflows/${wf}/runs`, { variables: { script: c.script } })
      expect(res.status).toBe(202)
      return res.body.id as string
    }))
    const results: Record<string, unknown> = {}
    for (const [i, c] of cases.entries()) {
      const run = await finished(runs[i]!)
      const events = await history(runs[i]!)
      expect(run.status, `${c.name}: ${JSON.stringify(run.error)}`).toBe(c.status)
      expect(events.map((e) => e.seq), c.name).toEqual(events.map((_, j) => j + 1))
      c.check(run, events)
      results[c.name] = { status: run.status, error: run.error?.code ?? null, transient_errors: events.filter((e) => e.type === 'run.error').length, ms: Date.parse(run.finished_at) - Date.parse(run.created_at) }
    }
    figures.scripted_runs = results
    figures.scripted_total_ms = Date.now() - started
    figures.upstream_timeout_ms = TIMEOUT_MS
  }, 60_000)

  it('times out runs that never finish at their deadline, and cancels them upstream', async () => {
    const wf = await workflow(await connection(upstream.url), { deadline_ms: 1_000, max_interval_ms: 200 })
    const ids = await Promise.all([[{ status: 'running' }], [{ status: 'reticulating' }], [{ hang: true }]].map(async (script) =>
      (await client.post(`/v1/workflows/${wf}/runs`, { variables: { script } })).body.id as string))
    const late: number[] = []
    for (const id of ids) {
      const run = await finished(id)
      expect(run.status).toBe('timed_out')
      expect(run.error.code).toBe('deadline_exceeded')
      const last = (await history(id)).at(-1)
      expect(last.data).toMatchObject({ to: 'timed_out' })
      expect(['canceled', 'cancel_failed']).toContain(last.data.upstream)
      // Finished at the deadline, not long after it (one poll timeout at most).
      const lateBy = Date.parse(run.finished_at) - Date.parse(run.deadline_at)
      expect(lateBy).toBeGreaterThanOrEqual(0)
      expect(lateBy).toBeLessThan(TIMEOUT_MS + 500)
      late.push(lateBy)
    }
    const job = [...upstream.jobs.values()].find((j) => (j.body as any)?.script?.[0]?.status === 'running' && j.canceled)
    expect(job, 'the running job was canceled upstream').toBeTruthy()
    figures.deadline = { runs: ids.length, max_ms_after_deadline: Math.max(...late) }
  }, 30_000)

  it('never calls sooner than a Retry-After (seconds form)', async () => {
    const wf = await workflow(await connection(upstream.url))
    const script: Step[] = [{ status: 'running' }, { http: 429, retryAfter: 1 }, { http: 503, retryAfter: 2 }, { http: 429, retryAfter: 1 }, { status: 'completed' }]
    const ids = await Promise.all(Array.from({ length: 5 }, async () => (await client.post(`/v1/workflows/${wf}/runs`, { variables: { script } })).body.id as string))
    let minGap = Infinity
    for (const id of ids) {
      const run = await finished(id)
      expect(run.status).toBe('completed')
      const job = upstream.jobs.get(run.upstream_id)!
      // Polls 2, 3 and 4 answered Retry-After 1, 2, 1 s: the next poll waits at least that long.
      for (const [k, secs] of [[1, 1], [2, 2], [3, 1]] as const) {
        const gap = job.pollTimes[k + 1]! - job.pollTimes[k]!
        expect(gap, `poll after a Retry-After: ${secs}`).toBeGreaterThanOrEqual(secs * 1000 - 5)
        minGap = Math.min(minGap, gap - secs * 1000)
      }
    }
    figures.retry_after = { runs: ids.length, min_margin_ms: minGap }
  }, 30_000)

  it('holds a connection\'s rate budget across all of its runs', async () => {
    const limited = await startGenericUpstream()
    const script: Step[] = [{ status: 'running' }, { status: 'running' }, { status: 'running' }, { status: 'running' }, { status: 'completed' }]
    try {
      const rps = 10
      const wf = await workflow(await connection(limited.url, { rate_limit_per_second: rps }), { first_interval_ms: 100, max_interval_ms: 100 })
      const ids = await Promise.all(Array.from({ length: 20 }, async () => (await client.post(`/v1/workflows/${wf}/runs`, { variables: { script } })).body.id as string))
      for (const id of ids) { const r = await finished(id, 30_000); expect(r.status, JSON.stringify(r.error)).toBe("completed") }
      const t = limited.requestTimes
      expect(t.length).toBe(20 * 6) // a trigger and 5 polls each
      // Token bucket of `rps` a second, bursting up to `rps`: any window [t_i, t_j] holds at most rps + rps·Δt + 1 requests.
      // Times are taken where the requests arrive: a window may look up to JITTER_MS shorter than it was
      // sent over (a loaded machine delays the first request of a window more than the last).
      const JITTER_MS = 50
      let worst = 0
      for (let i = 0; i < t.length; i++) {
        for (let j = i; j < t.length; j++) {
          const allowed = rps + (rps * (t[j]! - t[i]! + JITTER_MS)) / 1000 + 1
          worst = Math.max(worst, (j - i + 1) / allowed)
        }
      }
      expect(worst).toBeLessThanOrEqual(1)
      const span = (t.at(-1)! - t[0]!) / 1000
      figures.rate_budget = { limit_per_second: rps, requests: t.length, seconds: +span.toFixed(2), observed_per_second: +(t.length / span).toFixed(2), worst_window_ratio: +worst.toFixed(3) }
    } finally {
      await limited.close()
    }
  }, 45_000)
})
