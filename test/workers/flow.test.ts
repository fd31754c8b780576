/**
 * The basic HTTP flow on the real Worker (workerd): tenant, connection, workflow, trigger;
 * the run object's alarm polls the fake upstream; a WebSocket subscriber sees seq 1..n and
 * the close; SSE replays the same history; the tenant feed sees it with ids in order.
 */
import { env } from 'cloudflare:test'
import { describe, expect, it } from 'vitest'
import { call, oneToN, openSse, openWs, running, seqs, setupTenant, trigger, until } from './helpers.ts'

describe('runrelay on Workers: HTTP flow', () => {
  it('serves health and OpenAPI', async () => {
    const health = await call('GET', '/healthz')
    expect(health.status).toBe(200)
    expect(health.body.ok).toBe(true)
    const spec = await call('GET', '/openapi.json')
    expect(spec.status).toBe(200)
    expect(spec.body.paths['/v1/runs/{id}/stream']).toBeDefined()
    expect((await call('GET', '/v1/runs')).status).toBe(401)
    expect((await call('GET', '/v1/nope', env.RUNRELAY_ROOT_KEY)).body.error.code).toBe('not_found')
  })

  it('triggers a run, polls it by alarm, and streams it over WebSocket and SSE', async () => {
    const t = await setupTenant('flow')
    const feed = await openWs('/v1/stream', t.key)
    const run = await trigger(t, [...running(3), { status: 'completed', result: { ok: true } }], ['blue'])
    expect(run.status).toBe('queued')
    const sub = await openWs(`/v1/runs/${run.id}/stream`, t.key)
    const closed = await Promise.race([sub.closed, new Promise((_, rej) => setTimeout(() => rej(new Error('run stream did not close')), 15_000))])
    expect(closed).toMatchObject({ code: 1000 })
    expect(sub.messages[0]).toMatchObject({ type: 'hello', stream: 'run', run_id: run.id, after: 0 })
    const events = sub.events
    expect(seqs(events)).toEqual(oneToN(events.length))
    expect(events[0]!.type).toBe('run.created')
    expect(events.at(-1)).toMatchObject({ type: 'run.status_changed', status: 'completed' })
    expect(events.length).toBeGreaterThanOrEqual(5)

    const final = await call('GET', `/v1/runs/${run.id}`, t.key)
    expect(final.body).toMatchObject({ status: 'completed', result: { ok: true }, seq: events.length })
    const history = await call('GET', `/v1/runs/${run.id}/events`, t.key)
    expect(history.body.events).toEqual(events)

    // SSE of a finished run: the whole history, ids are seqs, then the stream ends.
    const sse = await openSse(`/v1/runs/${run.id}/events`, t.key)
    expect(sse.status).toBe(200)
    expect(sse.headers.get('content-type')).toContain('text/event-stream')
    await Promise.race([sse.done, new Promise((_, rej) => setTimeout(() => rej(new Error('sse did not end')), 10_000))])
    expect(sse.events.map((e) => Number(e.id))).toEqual(oneToN(events.length))
    expect(JSON.parse(sse.events.at(-1)!.data)).toEqual(events.at(-1))

    // The tenant feed saw every event of the run, in id order.
    await until(() => feed.events.filter((e) => e.run_id === run.id).length === events.length, 10_000, 'the feed to catch up')
    const ids = feed.events.map((e) => e.id)
    expect(ids).toEqual([...ids].sort((a, b) => a - b))
    expect(feed.events.filter((e) => e.run_id === run.id)).toEqual(events)
    feed.close()
  })

  it('resumes a run stream after a seq, and answers ping', async () => {
    const t = await setupTenant('resume')
    const run = await trigger(t, [...running(1), { status: 'completed' }])
    await until(async () => (await call('GET', `/v1/runs/${run.id}`, t.key)).body.status === 'completed', 15_000, 'completion')
    const all = (await call('GET', `/v1/runs/${run.id}/events`, t.key)).body.events
    const sub = await openWs(`/v1/runs/${run.id}/stream?after=2`, t.key)
    await sub.closed
    expect(seqs(sub.events)).toEqual(all.slice(2).map((e: any) => e.seq))

    const live = await trigger(t, running(50))
    const ws = await openWs(`/v1/runs/${live.id}/stream`, t.key)
    await until(() => ws.messages.some((m) => m.type === 'caught_up'), 5_000, 'caught_up')
    ws.send({ type: 'ping' })
    ws.send('{"type":"nonsense"}')
    await until(() => ws.messages.some((m) => m.type === 'pong') && ws.messages.some((m) => m.type === 'error'), 5_000, 'pong and error')
    const cancel = await call('POST', `/v1/runs/${live.id}/cancel`, t.key, {})
    expect(cancel.status).toBe(200)
    expect(cancel.body.status).toBe('canceled')
    expect(await ws.closed).toMatchObject({ code: 1000 })
    expect(ws.events.at(-1)).toMatchObject({ type: 'run.status_changed', status: 'canceled' })
    expect(seqs(ws.events)).toEqual(oneToN(ws.events.length))
    const again = await call('POST', `/v1/runs/${live.id}/cancel`, t.key, {})
    expect(again.status).toBe(409)
    expect(again.body.error.code).toBe('run_finished')
    const pause = await call('POST', `/v1/runs/${run.id}/pause`, t.key, {})
    expect(pause.status).toBe(409)
  })

  it('refuses private upstream URLs unless allowed, on the literal URL', async () => {
    // The test Worker allows private networks (the fake upstream is on 127.0.0.1); the
    // literal check itself is the same code as on Node (core/outbound.ts).
    const t = await setupTenant('urls')
    const bad = await call('POST', '/v1/connections', t.key, { name: 'x', provider: 'http', base_url: 'ftp://example.com/' })
    expect(bad.status).toBe(400)
  })
})
