import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { subscribeFeed, subscribeRun, SubscriptionError, waitForCompletion, type ConnectionState, type RunEvent } from '../../src/client/index.ts'
import { demoTenant, sleep, within } from '../helpers/live.ts'
import { startTcpProxy } from '../helpers/tcp-proxy.ts'
import { startTestServer, until, type TestServer } from '../helpers/server.ts'

// The SDK against the real server, over Node's global WebSocket (the same one browsers have).
let server: TestServer
let t: Awaited<ReturnType<typeof demoTenant>>
let proxy: Awaited<ReturnType<typeof startTcpProxy>>
let slow: string, quick: string, failing: string
const fast = { initialMs: 50, maxMs: 300 }

beforeAll(async () => {
  server = await startTestServer()
  proxy = await startTcpProxy(Number(new URL(server.url).port))
  t = await demoTenant(server)
  slow = await t.workflow('slow', { durationMs: 4_000, steps: 8, queueMs: 200 })
  quick = await t.workflow('quick', { durationMs: 600, steps: 2, queueMs: 0 })
  failing = await t.workflow('failing', { durationMs: 500, steps: 2, outcome: 'failed', queueMs: 0 })
})
afterAll(async () => {
  await proxy?.stop()
  await server?.stop()
})

const strip = (events: RunEvent[]) => events.map((e) => JSON.stringify(e))

describe('subscribeRun', () => {
  it('streams a whole run through the async iterator and ends after the terminal event', async () => {
    const runId = await t.trigger(quick)
    const got: RunEvent[] = []
    const sub = subscribeRun({ url: server.url, token: t.key, runId })
    await within((async () => { for await (const e of sub) got.push(e) })(), 15_000, 'iterator end')
    const result = await sub.finished
    expect(result).toMatchObject({ reason: 'completed', status: 'completed' })
    expect(strip(got)).toEqual(strip(await t.history(runId) as RunEvent[]))
    expect(sub.state).toBe('closed')
  })

  it('waitForCompletion resolves with the terminal status, completed or failed', async () => {
    const ok = await waitForCompletion({ url: server.url, token: t.key, runId: await t.trigger(quick) }, { timeoutMs: 15_000 })
    expect(ok.status).toBe('completed')
    const bad = await waitForCompletion({ url: server.url, token: t.key, runId: await t.trigger(failing) }, { timeoutMs: 15_000 })
    expect(bad.status).toBe('failed')
    expect(bad.event.type).toBe('run.status_changed')
  })

  it('server-side closes mid-run (1012) lose and repeat nothing', async () => {
    const runId = await t.trigger(slow)
    const got: RunEvent[] = []
    const states: ConnectionState[] = []
    const sub = subscribeRun({ url: server.url, token: t.key, runId, backoff: fast, onEvent: (e) => got.push(e), onStateChange: (s) => states.push(s) })
    for (let i = 0; i < 3; i++) {
      await until(() => got.length > i * 2 + 1, 10_000, `events before close ${i}`)
      server.runtime.streams.closeAll()
      await sleep(150 + i * 200)
    }
    const result = await within(sub.finished, 20_000, 'run end')
    expect(result.status).toBe('completed')
    expect(states.filter((s) => s === 'reconnecting').length).toBeGreaterThanOrEqual(3)
    expect(strip(got)).toEqual(strip(await t.history(runId) as RunEvent[]))
  })

  it('network drops (connections reset through a proxy) lose and repeat nothing', async () => {
    const runId = await t.trigger(slow)
    const got: RunEvent[] = []
    const before = proxy.connections
    const sub = subscribeRun({ url: proxy.url, token: t.key, runId, backoff: fast, onEvent: (e) => got.push(e) })
    for (let i = 0; i < 3; i++) {
      await until(() => got.length > i * 2 + 1 && proxy.open > 0, 10_000, `events before drop ${i}`)
      proxy.killAll()
      await sleep(100)
    }
    await within(sub.finished, 20_000, 'run end')
    expect(proxy.connections - before).toBeGreaterThanOrEqual(4)
    expect(strip(got)).toEqual(strip(await t.history(runId) as RunEvent[]))
  })

  it('a silent dead connection is noticed by the heartbeat watchdog and replaced', async () => {
    const runId = await t.trigger(slow)
    const got: RunEvent[] = []
    const states: ConnectionState[] = []
    const sub = subscribeRun({ url: proxy.url, token: t.key, runId, backoff: fast, onEvent: (e) => got.push(e), onStateChange: (s) => states.push(s) })
    await until(() => got.length >= 2 && proxy.open > 0, 10_000, 'first events')
    const stalledAt = Date.now()
    proxy.stallAll()
    // The server's heartbeat is 1 s: silence for 2.5 s means dead.
    await until(() => states.includes('reconnecting'), 6_000, 'watchdog reconnect')
    expect(Date.now() - stalledAt).toBeGreaterThanOrEqual(2_000)
    await within(sub.finished, 20_000, 'run end')
    expect(strip(got)).toEqual(strip(await t.history(runId) as RunEvent[]))
  })

  it('resumes from a given seq', async () => {
    const runId = await t.trigger(quick)
    await waitForCompletion({ url: server.url, token: t.key, runId }, { timeoutMs: 15_000 })
    const history = await t.history(runId) as RunEvent[]
    const got: RunEvent[] = []
    const sub = subscribeRun({ url: server.url, token: t.key, runId, after: 2, onEvent: (e) => got.push(e) })
    await within(sub.finished, 10_000, 'replay end')
    expect(strip(got)).toEqual(strip(history.slice(2)))
  })
})

describe('refusals and tokens', () => {
  it('does not reconnect when refused: wrong run, expired token, bad key', async () => {
    const runId = await t.trigger(quick)
    const other = await t.trigger(quick)
    const token = await t.mint({ run_ids: [runId] })
    for (const [opts, code] of [
      [{ runId: other, token }, 4004],
      [{ runId, token: 'rr_not_a_key' }, 4001],
      [{ runId, token: `${token.slice(0, -3)}abc` }, 4001],
    ] as const) {
      const states: ConnectionState[] = []
      const before = proxy.connections
      const sub = subscribeRun({ url: proxy.url, ...opts, backoff: fast, onStateChange: (s) => states.push(s) })
      const err = await within(sub.finished.then(() => null, (e) => e), 10_000, 'refusal')
      expect(err).toBeInstanceOf(SubscriptionError)
      expect((err as SubscriptionError).code).toBe(code)
      expect(states).not.toContain('reconnecting')
      // One upgrade attempt and one HTTP probe that tells the refusal apart from a network failure.
      expect(proxy.connections - before).toBeLessThanOrEqual(2)
    }
  })

  it('a subscriber token refreshes over the open socket and the stream goes on', async () => {
    const runId = await t.trigger(slow)
    let refreshes = 0
    const first = await t.mint({ run_ids: [runId], ttl_seconds: 2 })
    const hellos: unknown[] = []
    const refreshed: unknown[] = []
    const got: RunEvent[] = []
    const sub = subscribeRun({
      url: server.url, token: first, runId, backoff: fast,
      refreshToken: async () => { refreshes++; return t.mint({ run_ids: [runId], ttl_seconds: 2 }) },
      onEvent: (e) => got.push(e),
      onMessage: (m) => { if (m.type === 'hello') hellos.push(m); if (m.type === 'token_refreshed') refreshed.push(m) },
    })
    const result = await within(sub.finished, 20_000, 'run end')
    expect(result.status).toBe('completed')
    // The run outlives several 2-second tokens over one connection.
    expect(refreshes).toBeGreaterThanOrEqual(2)
    expect(refreshed.length).toBeGreaterThanOrEqual(2)
    expect(hellos).toHaveLength(1)
    expect(strip(got)).toEqual(strip(await t.history(runId) as RunEvent[]))
  })

  it('a token in the query string works too', async () => {
    const runId = await t.trigger(quick)
    const token = await t.mint({ run_ids: [runId] })
    const done = await waitForCompletion({ url: server.url, token, tokenTransport: 'query', runId }, { timeoutMs: 15_000 })
    expect(done.status).toBe('completed')
  })
})

describe('subscribeFeed', () => {
  it('follows the feed across server closes and network drops, filtered, with nothing missed or repeated', async () => {
    const got: RunEvent[] = []
    let hello = false
    const sub = subscribeFeed({ url: proxy.url, token: t.key, workflowId: quick, backoff: fast, onEvent: (e) => got.push(e), onMessage: (m) => { if (m.type === 'hello') hello = true } })
    await until(() => hello, 5_000, 'feed hello')
    const start = sub.position!
    const a = await t.trigger(quick)
    const noise = await t.trigger(failing)
    await until(() => got.length >= 2, 10_000, 'feed events')
    server.runtime.streams.closeAll()
    const b = await t.trigger(quick)
    await sleep(300)
    proxy.killAll()
    await waitForCompletion({ url: server.url, token: t.key, runId: a }, { timeoutMs: 15_000 })
    await waitForCompletion({ url: server.url, token: t.key, runId: b }, { timeoutMs: 15_000 })
    await waitForCompletion({ url: server.url, token: t.key, runId: noise }, { timeoutMs: 15_000 })
    const expected = [...await t.history(a), ...await t.history(b)].sort((x, y) => x.id - y.id) as RunEvent[]
    await until(() => got.length >= expected.length, 10_000, 'all feed events')
    sub.close()
    expect(got.every((e) => e.id > start)).toBe(true)
    expect(strip(got)).toEqual(strip(expected))
    expect(await sub.finished).toEqual({ reason: 'closed' })
  })
})
