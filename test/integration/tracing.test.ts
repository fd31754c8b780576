/**
 * OpenTelemetry traces exported over OTLP/HTTP to a local receiver on loopback: a run against
 * a fake upstream is one trace, the trigger request's server span (continuing the caller's
 * `traceparent`) → runrelay.trigger → runrelay.poll (each a child of the trigger), each with
 * its upstream call and runrelay.persist → runrelay.publish. No credential reaches a span.
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freePort, waitHealthy } from '../helpers/child.ts'
import { genericWorkflowConfig, startGenericUpstream, type GenericUpstream } from '../fakes/generic-upstream.ts'
import { startOtlpReceiver, type ReceivedSpan } from '../fakes/otlp-receiver.ts'
import { openSse } from '../helpers/clients.ts'
import { createTenant, startTestServer, until, type TestServer } from '../helpers/server.ts'

const UPSTREAM_SECRET = 'upstream-secret-4f1c9a'
const CALLER_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736'
const CALLER_SPAN = '00f067aa0ba902b7'

describe('tracing over OTLP/HTTP', () => {
  let receiver: Awaited<ReturnType<typeof startOtlpReceiver>>
  let upstream: GenericUpstream
  let server: TestServer
  let t: Awaited<ReturnType<typeof createTenant>>

  beforeAll(async () => {
    receiver = await startOtlpReceiver()
    upstream = await startGenericUpstream()
    server = await startTestServer({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_SERVICE_NAME: 'runrelay-test', OTEL_BSP_SCHEDULE_DELAY: '50' })
    t = await createTenant(server, 'traced')
  })
  afterAll(async () => {
    await server?.stop()
    await upstream?.close()
    await receiver?.close()
  })

  it('exports one trace per run: request → trigger → poll, each with upstream → persist → publish', async () => {
    const conn = await t.client.post('/v1/connections', {
      name: 'fake', provider: 'http', base_url: upstream.url, config: { auth: { type: 'query', param: 'api_key' } }, credentials: { token: UPSTREAM_SECRET },
    })
    expect(conn.status).toBe(201)
    const wf = await t.client.post('/v1/workflows', {
      name: 'traced', connection_id: conn.body.id, upstream_workflow_id: 'jobs', config: genericWorkflowConfig, input_template: { script: '{{script}}' },
      poll_policy: { first_interval_ms: 100, max_interval_ms: 200 },
    })
    expect(wf.status).toBe(201)
    const token = (await t.client.post('/v1/tokens', { workflow_ids: [wf.body.id] })).body.token as string
    const created = await t.client.post(`/v1/workflows/${wf.body.id}/runs`, { variables: { script: [{ status: 'running' }, { status: 'running' }, { status: 'completed', result: { ok: 1 } }] } },
      { traceparent: `00-${CALLER_TRACE}-${CALLER_SPAN}-01` })
    expect(created.status).toBe(202)
    const runId = created.body.id as string
    // A subscriber with its token in the query string: the URL in its server span must not keep it.
    const sse = openSse(`${server.url}/v1/runs/${runId}/events?token=${token}`)
    await until(async () => (await t.client.get(`/v1/runs/${runId}`)).body.status === 'completed', 10_000, 'the run to complete')
    await sse.done

    const ofRun = (name: string) => receiver.spans.filter((s) => s.name === name && s.attributes['runrelay.run_id'] === runId)
    await until(() => ofRun('runrelay.poll').length >= 3 && receiver.spans.some((s) => s.name === 'GET /v1/runs/:id/events'), 10_000, 'the spans to be exported')
    const byId = new Map(receiver.spans.map((s) => [s.spanId, s]))
    const parentOf = (s: ReceivedSpan) => (s.parentSpanId ? byId.get(s.parentSpanId) : undefined)
    const childrenOf = (s: ReceivedSpan, name: string) => receiver.spans.filter((c) => c.parentSpanId === s.spanId && c.name === name)

    // The trigger request continues the caller's trace; its run.created write is persisted then published.
    const request = receiver.spans.find((s) => s.name === 'POST /v1/workflows/:id/runs')!
    expect(request).toMatchObject({ traceId: CALLER_TRACE, parentSpanId: CALLER_SPAN, service: 'runrelay-test' })
    expect(request.attributes['http.response.status_code']).toBe(202)
    const createdPersist = childrenOf(request, 'runrelay.persist')
    expect(createdPersist).toHaveLength(1)
    expect(childrenOf(createdPersist[0]!, 'runrelay.publish')).toHaveLength(1)

    // The trigger tick: in the same trace, under the request that created the run.
    const [trigger] = ofRun('runrelay.trigger')
    expect(trigger).toBeDefined()
    expect([trigger!.traceId, parentOf(trigger!)?.name]).toEqual([CALLER_TRACE, 'POST /v1/workflows/:id/runs'])
    expect(trigger!.attributes['runrelay.provider']).toBe('http')
    const triggerCall = childrenOf(trigger!, 'runrelay.upstream')
    expect(triggerCall.map((s) => [s.attributes['http.request.method'], s.attributes['http.response.status_code']])).toEqual([['POST', 201]])
    // Two writes: the attempt, committed before the request leaves (triggers at most once), then
    // the answer (here `queued` again: no event, so nothing is published under either).
    const triggerPersist = childrenOf(trigger!, 'runrelay.persist')
    expect(triggerPersist).toHaveLength(2)
    expect(triggerPersist.flatMap((p) => childrenOf(p, 'runrelay.publish'))).toEqual([])

    // Every poll is a child of the trigger and calls the upstream once; a poll that changed
    // something writes once (persist → publish), one that changed nothing of the run is not
    // written (the ledger keeps its bookkeeping in memory, BENCHMARKS.md "watch"), so no span.
    const polls = ofRun('runrelay.poll')
    expect(polls.length).toBeGreaterThanOrEqual(3)
    const publishesOf = (poll: (typeof polls)[number]) => childrenOf(poll, 'runrelay.persist').flatMap((p) => childrenOf(p, 'runrelay.publish'))
    for (const poll of polls) {
      expect([poll.traceId, poll.parentSpanId]).toEqual([CALLER_TRACE, trigger!.spanId])
      expect(childrenOf(poll, 'runrelay.upstream').map((s) => s.attributes['http.request.method'])).toEqual(['GET'])
      expect(childrenOf(poll, 'runrelay.persist').length).toBeLessThanOrEqual(1)
      // Published only when the poll saw a change, and only after its write.
      expect(publishesOf(poll).length).toBeLessThanOrEqual(1)
    }
    // The polls that saw a change (the run's end at least) were written and published.
    expect(polls.some((poll) => publishesOf(poll).length === 1)).toBe(true)

    // Secrets stay out: the upstream's query credential, the subscriber token, the keys.
    const exported = receiver.bodies.join('\n')
    for (const secret of [UPSTREAM_SECRET, token, t.key, server.rootKey]) expect(exported).not.toContain(secret)
    const sseSpan = receiver.spans.find((s) => s.name === 'GET /v1/runs/:id/events')!
    expect(sseSpan.attributes['url.full']).toBe(`${server.url}/v1/runs/${runId}/events`)
    expect(receiver.paths.every((p) => p.startsWith('POST /v1/traces application/json'))).toBe(true)
  })

  it('gives an error answer a request id, and its server span the status', async () => {
    const res = await t.client.get('/v1/runs/run_missing')
    expect(res.status).toBe(404)
    expect(res.body.error.request_id).toBe(res.headers.get('x-request-id'))
    await until(() => receiver.spans.some((s) => s.name === 'GET /v1/runs/:id' && s.attributes['http.response.status_code'] === 404), 10_000, 'the 404 span')
  })
})

describe('tracing off (no OTLP endpoint)', () => {
  it('loads nothing of the OpenTelemetry SDK, exporter or @hono/otel', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'runrelay-notrace-'))
    const port = await freePort()
    const out = join(dir, 'imports.txt')
    // The pinned Node 22 (synchronous module hooks) runs `npm start`'s entry and records every module it resolves.
    const child = spawn(join('node_modules', '.bin', 'node'), ['--import', './test/helpers/record-imports.mjs', '--import', 'tsx', 'src/runtime/node/main.ts'], {
      env: { ...process.env, IMPORTS_OUT: out, PORT: String(port), HOST: '127.0.0.1', RUNRELAY_DATA_DIR: dir, RUNRELAY_LOG: 'silent', OTEL_EXPORTER_OTLP_ENDPOINT: '', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: '' },
      stdio: 'ignore',
    })
    const exited = new Promise((r) => child.once('exit', r))
    try {
      expect(await waitHealthy(`http://127.0.0.1:${port}`, exited, 20_000)).toBe(true)
      expect((await fetch(`http://127.0.0.1:${port}/v1/nowhere`)).status).toBe(404)
      child.kill('SIGTERM')
      await exited
      const modules = readFileSync(out, 'utf8').split('\n')
      expect(modules.some((m) => m.endsWith('/src/runtime/local/telemetry.ts')), 'the recorder saw the app').toBe(true)
      // prom-client loads @opentelemetry/api (a no-op facade) for its exemplars; nothing that records or sends.
      const loaded = modules.filter((m) => /node_modules\/(@opentelemetry\/(?!api\/)|@hono\/otel\/)/.test(m))
      expect(loaded).toEqual([])
    } finally {
      child.kill('SIGKILL')
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
