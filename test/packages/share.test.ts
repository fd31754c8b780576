import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import WebSocket from 'ws'
import { acquireRun, followRun, sharedRunSubscriptions, throttled, type RunView, type WebSocketConstructor } from '../../packages/client/src/index.ts'
import { demoTenant, sleep } from '../helpers/live.ts'
import { startTestServer, until, type TestServer } from '../helpers/server.ts'

// What the React, Vue and Svelte bindings share (@runrelay/client's share.ts): one subscription
// per run, reference-counted, against a live server (real sockets, counted as they open); the
// throttle that spaces a reader's updates. The bindings' own use of it is checked in Chromium
// (test/packages/examples.test.ts, "hooks from the tarball").
let server: TestServer
let t: Awaited<ReturnType<typeof demoTenant>>
let wf: string
const opened: string[] = []
/** `ws`, counting every socket it opens (Node 20 has no global WebSocket). */
class Counting extends WebSocket {
  constructor(url: string, protocols?: string | string[]) { super(url, protocols); opened.push(new URL(url).pathname) }
}
const WS = Counting as unknown as WebSocketConstructor

beforeAll(async () => {
  server = await startTestServer()
  t = await demoTenant(server)
  wf = await t.workflow('shared', { durationMs: 1_500, steps: 3 })
})
afterAll(async () => { await server?.stop() })

describe('one subscription per run, shared', () => {
  it('readers of one (url, token, run) share one socket; another token gets its own; the last release closes it on the next tick', async () => {
    const runId = await t.trigger(wf)
    const before = sharedRunSubscriptions()
    const socketsBefore = opened.length
    const opts = { url: server.url, token: t.key, runId, WebSocket: WS }
    const a = acquireRun(opts)
    const b = acquireRun(opts)
    expect(b.live).toBe(a.live)
    expect(sharedRunSubscriptions()).toBe(before + 1)
    // Another credential may see something else: its own subscription.
    const other = acquireRun({ ...opts, token: await t.mint({ run_ids: [runId] }) })
    expect(other.live).not.toBe(a.live)
    expect(sharedRunSubscriptions()).toBe(before + 2)
    other.release()

    a.release()
    a.release() // idempotent: b still holds its reference
    await sleep(20)
    expect(sharedRunSubscriptions()).toBe(before + 1)
    // The last release, then a new reader in the same tick (a remount): the same subscription.
    b.release()
    const c = acquireRun(opts)
    expect(c.live).toBe(a.live)
    await sleep(20)
    expect(sharedRunSubscriptions()).toBe(before + 1)
    await until(() => a.live.get().run.finished, 15_000, 'run end')
    c.release()
    expect(sharedRunSubscriptions()).toBe(before + 1) // closed on the next tick, not at once
    await sleep(20)
    expect(sharedRunSubscriptions()).toBe(before)
    // Two subscriptions were opened (the key's and the other token's): one socket each.
    expect(opened.slice(socketsBefore)).toEqual([`/v1/runs/${runId}/stream`, `/v1/runs/${runId}/stream`])
    // Once closed, the next reader opens a new one.
    const d = acquireRun(opts)
    expect(d.live).not.toBe(a.live)
    d.release()
  })

  it('followRun: every reader gets the final snapshot and its own onComplete once (also a reader that comes after the end); the throttled one gets fewer updates', async () => {
    const runId = await t.trigger(wf)
    const socketsBefore = opened.length
    const opts = { url: server.url, token: t.key, runId, WebSocket: WS }
    const seen = { fast: [] as RunView[], slow: [] as RunView[], late: [] as RunView[] }
    const completions = { fast: 0, slow: 0, late: 0 }
    const stopFast = followRun({ ...opts, onComplete: () => completions.fast++ }, (v) => seen.fast.push(v))
    const stopSlow = followRun({ ...opts, throttleMs: 60_000, onComplete: () => completions.slow++ }, (v) => seen.slow.push(v))
    // The current view at once: a fresh subscription starts at `connecting`.
    expect(seen.fast.map((v) => v.state)).toEqual(['connecting'])
    await until(() => seen.fast.at(-1)?.run.finished && seen.slow.at(-1)?.run.finished, 15_000, 'both readers see the end')
    const stopLate = followRun({ ...opts, onComplete: () => completions.late++ }, (v) => seen.late.push(v))
    expect(seen.late).toHaveLength(1)
    expect(seen.late[0]!.run.status).toBe('completed')
    await sleep(50)
    expect(completions).toEqual({ fast: 1, slow: 1, late: 1 })
    expect(seen.slow.at(-1)!.run).toBe(seen.fast.at(-1)!.run)
    expect(seen.fast.at(-1)!.run.events.length).toBeGreaterThanOrEqual(5)
    expect(seen.slow.length).toBeLessThan(seen.fast.length)
    // Three readers, one socket.
    expect(opened.slice(socketsBefore)).toEqual([`/v1/runs/${runId}/stream`])
    stopFast(); stopSlow(); stopLate()
  })
})

describe('throttled', () => {
  afterEach(() => { vi.useRealTimers() })

  it('passes the first value at once, then at most one per interval (the latest wins); flush passes at once; cancel drops a pending one', () => {
    vi.useFakeTimers({ now: 1_000_000 })
    const got: number[] = []
    const t = throttled<number>((v) => got.push(v), 100)
    t.push(1)
    t.push(2)
    t.push(3)
    expect(got).toEqual([1])
    vi.advanceTimersByTime(99)
    expect(got).toEqual([1])
    vi.advanceTimersByTime(1)
    expect(got).toEqual([1, 3])
    t.push(4)
    t.push(5, true)
    expect(got).toEqual([1, 3, 5])
    vi.advanceTimersByTime(500)
    expect(got).toEqual([1, 3, 5])
    t.push(6)
    t.push(7)
    t.cancel()
    vi.advanceTimersByTime(500)
    expect(got).toEqual([1, 3, 5, 6])
  })

  it('no interval: every value passes', () => {
    const got: number[] = []
    for (const ms of [0, undefined]) {
      const t = throttled<number>((v) => got.push(v), ms)
      t.push(1); t.push(2); t.push(3)
    }
    expect(got).toEqual([1, 2, 3, 1, 2, 3])
  })
})
