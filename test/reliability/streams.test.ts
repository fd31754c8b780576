/**
 * Subscribers under stress: a reconnect storm checked Jepsen style against the stored
 * history, and a subscriber that stops reading.
 */
import WebSocket from 'ws'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { demoTenant, sleep } from '../helpers/live.ts'
import { startTestServer, until, type TestServer } from '../helpers/server.ts'
import { recordFigures } from './figures.ts'
import { checkHistory, resilientSubscriber, sumChecks, type Ev } from './subscriber.ts'

const MAX_BUFFERED = 256 * 1024

describe('reliability: streams', () => {
  let server: TestServer
  const figures: Record<string, unknown> = {}

  beforeAll(async () => {
    server = await startTestServer({ RUNRELAY_WS_MAX_BUFFERED_BYTES: String(MAX_BUFFERED), RUNRELAY_RATE_LIMIT_PER_MINUTE: '0' })
  })
  afterAll(async () => {
    await server?.stop()
    recordFigures('streams', figures)
  })

  it('reconnect storm: 200 subscribers, up to 1,000 random cuts in 30 s while events flow: 0 lost, 0 duplicated, 0 reordered', async () => {
    const t = await demoTenant(server, 'storm')
    const wf = await t.workflow('storm', { durationMs: 7_000, steps: 40, queueMs: 100 })
    await t.client.patch(`/v1/workflows/${wf}`, { poll_policy: { first_interval_ms: 100, max_interval_ms: 150 } })
    const runs = await Promise.all(Array.from({ length: 50 }, () => t.trigger(wf)))
    const subs = [
      ...runs.flatMap((id) => [0, 1, 2].map(() => resilientSubscriber({ url: `${server.wsUrl}/v1/runs/${id}/stream`, key: t.key, kind: 'run', reconnectMs: 30 }))),
      ...Array.from({ length: 50 }, () => resilientSubscriber({ url: `${server.wsUrl}/v1/stream`, key: t.key, kind: 'feed', after: 0, reconnectMs: 30 })),
    ]
    expect(subs.length).toBe(200)
    try {
      let cuts = 0
      const started = Date.now()
      while (cuts < 1_000 && Date.now() - started < 30_000) {
        const live = subs.filter((s) => s.connected)
        if (live.length && live[Math.floor(Math.random() * live.length)]!.cut()) cuts++
        await sleep(4)
      }
      const cutMs = Date.now() - started
      // Bounded in time: on a loaded machine fewer cuts fit in 30 s (the figures record how many).
      expect(cuts).toBeGreaterThanOrEqual(100)
      const stillRunning = (await t.client.get('/v1/runs?limit=200')).body.items.filter((r: any) => !r.finished_at).length
      await until(async () => (await t.client.get('/v1/runs?limit=200')).body.items.every((r: any) => r.finished_at), 30_000, 'runs finished')
      const histories = new Map<string, Ev[]>()
      for (const id of runs) histories.set(id, await t.history(id) as Ev[])
      const all = [...histories.values()].flat().sort((a, b) => a.id - b.id)
      const maxId = all.at(-1)!.id
      await until(() => subs.slice(0, 150).every((s) => s.finished) && subs.slice(150).every((s) => s.last >= maxId), 30_000, 'subscribers caught up')
      const checks = [
        ...subs.slice(0, 150).map((s, i) => checkHistory(histories.get(runs[Math.floor(i / 3)]!)!, s.received, (e) => e.seq)),
        ...subs.slice(150).map((s) => checkHistory(all, s.received, (e) => e.id)),
      ]
      const total = sumChecks(checks)
      expect(total).toMatchObject({ lost: 0, duplicated: 0, reordered: 0 })
      figures.reconnect_storm = {
        subscribers: subs.length, run_subscribers: 150, feed_subscribers: 50, runs: runs.length, events_published: all.length,
        cuts, cut_phase_ms: cutMs, runs_still_running_after_cuts: stillRunning, connections: subs.reduce((n, s) => n + s.connects, 0), ...total,
      }
    } finally {
      for (const s of subs) s.stop()
    }
  }, 90_000)

  it('a subscriber that stops reading is closed with 4008, does not slow the others, and resumes without loss', async () => {
    const t = await demoTenant(server, 'slow')
    // Big events: each run's creation carries 128 KiB, so a few runs overflow the paused client's buffers.
    const blob = 'x'.repeat(128 * 1024)
    const wf = await t.workflow('slow', { durationMs: 300, steps: 2, queueMs: 0 })
    await t.client.patch(`/v1/workflows/${wf}`, { poll_policy: { first_interval_ms: 100, max_interval_ms: 100 } })
    const fast = resilientSubscriber({ url: `${server.wsUrl}/v1/stream`, key: t.key, kind: 'feed', after: 0 })
    const slow = new WebSocket(`${server.wsUrl}/v1/stream?after=0`, { headers: { authorization: `Bearer ${t.key}` } })
    const slowEvents: Ev[] = []
    let slowClose = 0
    slow.on('message', (d) => { const m = JSON.parse(d.toString()); if (m.type === 'event') slowEvents.push(m.event); if (m.type === 'batch') slowEvents.push(...m.events) })
    const slowClosed = new Promise<number>((r) => slow.on('close', (code) => r((slowClose = code))))
    await new Promise((r) => slow.once('open', r))
    // Stop reading: the server's writes pile up in its socket buffer (ws bufferedAmount).
    ;(slow as any)._socket.pause()
    const lag: number[] = []
    const heapBefore = process.memoryUsage().heapUsed
    const started = Date.now()
    let runs = 0
    let openAt4008: number | null = null
    while (Date.now() - started < 25_000 && openAt4008 === null) {
      const id = await t.trigger(wf, { variables: { note: blob }, tags: [] })
      runs++
      // The fast subscriber sees each run's creation promptly, however far behind the slow one is.
      const t0 = Date.now()
      await until(() => fast.received.some((e) => e.run_id === id), 5_000, 'fast subscriber')
      lag.push(Date.now() - t0)
      if (server.runtime.streams.openSockets === 1) openAt4008 = Date.now() - started
    }
    expect(openAt4008, 'the slow socket was dropped by the server').not.toBeNull()
    const heapGrowth = process.memoryUsage().heapUsed - heapBefore
    // Resume reading: everything buffered arrives, then the 4008 (or the drop after the grace period).
    ;(slow as any)._socket.resume()
    const code = await slowClosed
    expect([4008, 1006]).toContain(code)
    // Resume with `after` = the last id received: nothing is missing.
    const last = slowEvents.reduce((m, e) => Math.max(m, e.id), 0)
    const resumed = resilientSubscriber({ url: `${server.wsUrl}/v1/stream`, key: t.key, kind: 'feed', after: last })
    await until(async () => (await t.client.get('/v1/runs?limit=200')).body.items.every((r: any) => r.finished_at), 20_000, 'runs finished')
    const ids = (await t.client.get('/v1/runs?limit=200')).body.items.map((r: any) => r.id)
    const all = (await Promise.all(ids.map((id: string) => t.history(id)))).flat().sort((a: any, b: any) => a.id - b.id) as Ev[]
    await until(() => resumed.last >= all.at(-1)!.id && fast.last >= all.at(-1)!.id, 10_000, 'resumed')
    const check = checkHistory(all, [...slowEvents, ...resumed.received], (e) => e.id)
    expect(check).toMatchObject({ lost: 0, duplicated: 0, reordered: 0 })
    expect(checkHistory(all, fast.received, (e) => e.id)).toMatchObject({ lost: 0, duplicated: 0, reordered: 0 })
    fast.stop()
    resumed.stop()
    lag.sort((a, b) => a - b)
    figures.slow_subscriber = {
      max_buffered_bytes: MAX_BUFFERED, runs_until_drop: runs, dropped_after_ms: openAt4008, close_code: code || slowClose,
      fast_subscriber_lag_ms_p50: lag[Math.floor(lag.length / 2)], fast_subscriber_lag_ms_max: lag.at(-1),
      test_process_heap_growth_mb: +(heapGrowth / 1048576).toFixed(1), slow_then_resumed: check,
    }
  }, 60_000)
})
