/**
 * GET /metrics on a real server: who may scrape it, and that its counters move with real runs
 * against a fake upstream on loopback (ticks, upstream requests by status, errors, events,
 * finished runs, unfinished runs by status), real WebSocket and SSE subscribers, a slow
 * consumer closed with 4008, and webhook deliveries by outcome. Request ids in error bodies.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { genericWorkflowConfig, startGenericUpstream, type GenericUpstream, type Step } from '../fakes/generic-upstream.ts'
import { openSse, openWs } from '../helpers/clients.ts'
import { demoTenant } from '../helpers/live.ts'
import { metricValue, parsePrometheus, type Sample } from '../helpers/prometheus.ts'
import { api, createTenant, startTestServer, until, type TestServer } from '../helpers/server.ts'

const METRICS_TOKEN = 'metrics-token-0123456789'

describe('GET /metrics', () => {
  let server: TestServer
  let upstream: GenericUpstream
  let hooks: Server
  let hooksUrl: string
  let t: Awaited<ReturnType<typeof createTenant>>

  const scrape = async (): Promise<Sample[]> => {
    const res = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
    return parsePrometheus(await res.text())
  }
  const finished = (id: string) => until(async () => {
    const r = await t.client.get(`/v1/runs/${id}`)
    return r.body.finished_at ? r.body : null
  }, 15_000, `run ${id} to finish`)

  beforeAll(async () => {
    upstream = await startGenericUpstream()
    // A webhook receiver: 200 on /ok, 410 (gone for good) on /gone.
    hooks = createServer((req, res) => { req.resume(); req.on('end', () => { res.writeHead(req.url === '/gone' ? 410 : 200); res.end() }) })
    await new Promise<void>((r) => hooks.listen(0, '127.0.0.1', r))
    hooksUrl = `http://127.0.0.1:${(hooks.address() as AddressInfo).port}`
    server = await startTestServer({ RUNRELAY_METRICS_TOKEN: METRICS_TOKEN, RUNRELAY_JOBS_INTERVAL_MS: '50', RUNRELAY_WS_MAX_BUFFERED_BYTES: '1024' })
    t = await createTenant(server, 'metrics')
  })
  afterAll(async () => {
    await server?.stop()
    await upstream?.close()
    await new Promise((r) => hooks?.close(r))
  })

  it('answers the metrics token and the root key; anyone else gets a JSON error with a request id', async () => {
    const anon = await api(server.url).get('/metrics')
    expect(anon.status).toBe(401)
    expect(anon.body.error.code).toBe('unauthorized')
    expect(anon.body.error.request_id).toBe(anon.headers.get('x-request-id'))
    const admin = await t.client.get('/metrics')
    expect([admin.status, admin.body.error.code]).toEqual([403, 'forbidden'])
    const wrong = await api(server.url, 'metrics-token-0123456780').get('/metrics')
    expect(wrong.status).toBe(401)
    const root = await api(server.url, server.rootKey).get('/metrics')
    expect(root.status).toBe(200)
    // Every catalogue metric is exposed, with its help text, before anything happened.
    for (const name of ['runrelay_runs', 'runrelay_ticks_total', 'runrelay_upstream_requests_total', 'runrelay_events_persisted_total', 'runrelay_subscribers',
      'runrelay_slow_consumer_closes_total', 'runrelay_webhook_deliveries_total', 'runrelay_bus_lag_seconds', 'runrelay_lease_takeovers_total', 'process_resident_memory_bytes',
      'runrelay_watch_backlog_runs', 'runrelay_watch_lag_seconds', 'runrelay_watch_ticks_in_flight', 'runrelay_watch_held_runs']) {
      expect(root.body, name).toMatch(new RegExp(`^# HELP ${name} `, 'm'))
    }
  })

  it('counts ticks, upstream requests and errors, events and runs as real runs go', async () => {
    const conn = await t.client.post('/v1/connections', { name: 'fake', provider: 'http', base_url: upstream.url })
    const wf = await t.client.post('/v1/workflows', {
      name: 'scripted', connection_id: conn.body.id, upstream_workflow_id: 'jobs', config: genericWorkflowConfig, input_template: { script: '{{script}}' },
      poll_policy: { first_interval_ms: 100, max_interval_ms: 200, max_transient_errors: 5 },
    })
    expect(wf.status).toBe(201)
    const before = await scrape()
    const trigger = async (script: Step[]) => (await t.client.post(`/v1/workflows/${wf.body.id}/runs`, { variables: { script } })).body.id as string
    const ok = await trigger([{ status: 'running' }, { http: 503 }, { status: 'completed', result: { ok: true } }])
    const gone = await trigger([{ http: 404 }])
    const forever = await trigger([{ status: 'running' }])
    await finished(ok)
    await finished(gone)
    await until(async () => (await t.client.get(`/v1/runs/${forever}`)).body.status === 'running', 10_000, 'a running run')

    // The forever run keeps polling: one poll may be answered upstream and not yet counted here when the scrape is made.
    const requestsBefore = upstream.requests
    const mid = await scrape()
    const requestsAfter = upstream.requests
    const delta = (name: string, labels: Record<string, string> = {}, from = before, to = mid) => metricValue(to, name, labels) - metricValue(from, name, labels)
    expect(metricValue(mid, 'runrelay_runs', { status: 'running' })).toBe(1)
    expect(delta('runrelay_ticks_total', { phase: 'trigger', outcome: 'ok' })).toBe(3)
    expect(delta('runrelay_ticks_total', { phase: 'poll', outcome: 'ok' })).toBeGreaterThanOrEqual(4)
    expect(delta('runrelay_tick_duration_seconds_count', { phase: 'trigger' })).toBe(3)
    // Three triggers answered 201; the polls: 200s, one 503 and one 404.
    expect(delta('runrelay_upstream_requests_total', { provider: 'http', status: '201' })).toBe(3)
    expect(delta('runrelay_upstream_requests_total', { provider: 'http', status: '503' })).toBe(1)
    expect(delta('runrelay_upstream_requests_total', { provider: 'http', status: '404' })).toBe(1)
    const counted = delta('runrelay_upstream_requests_total', { provider: 'http' })
    expect(counted).toBeGreaterThanOrEqual(requestsBefore - 1)
    expect(counted).toBeLessThanOrEqual(requestsAfter)
    expect(delta('runrelay_upstream_request_duration_seconds_count', { provider: 'http' })).toBe(counted)
    expect(delta('runrelay_upstream_errors_total', { provider: 'http', phase: 'poll', code: 'upstream_unavailable', transient: 'true' })).toBe(1)
    expect(delta('runrelay_upstream_errors_total', { provider: 'http', phase: 'poll', code: 'upstream_http_404', transient: 'false' })).toBe(1)
    expect(delta('runrelay_runs_finished_total', { status: 'completed' })).toBe(1)
    expect(delta('runrelay_runs_finished_total', { status: 'failed' })).toBe(1)
    // Every stored event was counted as persisted and as published, once.
    let stored = 0
    for (const id of [ok, gone, forever]) stored += (await t.client.get(`/v1/runs/${id}/events?limit=1000`)).body.events.length
    expect(delta('runrelay_events_persisted_total')).toBe(stored)
    expect(delta('runrelay_events_persisted_total', { type: 'run.created' })).toBe(3)
    expect(delta('runrelay_events_persisted_total', { type: 'run.error' })).toBe(1)
    expect(delta('runrelay_events_published_total')).toBe(stored)

    expect((await t.client.post(`/v1/runs/${forever}/cancel`)).status).toBe(200)
    const after = await scrape()
    expect(metricValue(after, 'runrelay_runs', { status: 'running' })).toBe(0)
    expect(delta('runrelay_runs_finished_total', { status: 'canceled' }, mid, after)).toBe(1)
  })

  it('gauges open WebSocket and SSE subscribers by stream, and counts a slow consumer closed with 4008', async () => {
    const d = await demoTenant(server, 'subscribers')
    const wf = await d.workflow('slow', { durationMs: 60_000, steps: 1, queueMs: 0 })
    const run = await d.trigger(wf)
    const subscribers = (s: Sample[], transport: string, stream: string) => metricValue(s, 'runrelay_subscribers', { transport, stream })
    const base = await scrape()
    const ws = openWs(`${server.wsUrl}/v1/stream`, { authorization: `Bearer ${d.key}` })
    await ws.opened
    const sse = openSse(`${server.url}/v1/runs/${run}/events`, { authorization: `Bearer ${d.key}` })
    await until(() => sse.status === 200, 5_000, 'SSE open')
    await until(async () => subscribers(await scrape(), 'sse', 'run') === subscribers(base, 'sse', 'run') + 1, 5_000, 'the SSE subscriber counted')
    const open = await scrape()
    expect(subscribers(open, 'ws', 'feed') - subscribers(base, 'ws', 'feed')).toBe(1)
    ws.close()
    sse.close()
    await until(async () => {
      const s = await scrape()
      return subscribers(s, 'ws', 'feed') === subscribers(base, 'ws', 'feed') && subscribers(s, 'sse', 'run') === subscribers(base, 'sse', 'run')
    }, 5_000, 'the closed subscribers uncounted')

    // A feed subscriber that stops reading while 128 KiB events pile up is closed with 4008.
    const slow = new WebSocket(`${server.wsUrl}/v1/stream`, { headers: { authorization: `Bearer ${d.key}` } })
    const closed = new Promise<number>((r) => slow.on('close', (code) => r(code)))
    await new Promise((r) => slow.once('open', r))
    ;(slow as any)._socket.pause()
    const quick = await d.workflow('quick', { durationMs: 50, steps: 1, queueMs: 0 })
    const blob = 'x'.repeat(128 * 1024)
    const slowBefore = metricValue(await scrape(), 'runrelay_slow_consumer_closes_total', { transport: 'ws' })
    const started = Date.now()
    let counted = 0
    for (let i = 0; i < 200 && Date.now() - started < 20_000 && counted === 0; i++) {
      await d.trigger(quick, { variables: { note: blob } })
      counted = metricValue(await scrape(), 'runrelay_slow_consumer_closes_total', { transport: 'ws' }) - slowBefore
    }
    expect(counted).toBe(1)
    ;(slow as any)._socket.resume()
    expect(await closed).toBe(4008)
  }, 40_000)

  it('counts webhook deliveries by outcome', async () => {
    const d = await demoTenant(server, 'hooks')
    const wf = await d.workflow('hooked', { durationMs: 20, steps: 1, queueMs: 0 })
    const okHook = await d.client.post('/v1/webhooks', { url: `${hooksUrl}/ok`, workflow_id: wf })
    const goneHook = await d.client.post('/v1/webhooks', { url: `${hooksUrl}/gone`, workflow_id: wf })
    expect([okHook.status, goneHook.status]).toEqual([201, 201])
    const before = await scrape()
    await d.trigger(wf)
    const outcome = (s: Sample[], o: string) => metricValue(s, 'runrelay_webhook_deliveries_total', { outcome: o }) - metricValue(before, 'runrelay_webhook_deliveries_total', { outcome: o })
    const after = await until(async () => {
      const s = await scrape()
      return outcome(s, 'succeeded') >= 1 && outcome(s, 'gone') >= 1 ? s : null
    }, 10_000, 'both deliveries counted')
    expect([outcome(after, 'succeeded'), outcome(after, 'gone'), outcome(after, 'retrying')]).toEqual([1, 1, 0])
  })
})
