// The events-table tail (src/runtime/local/tail.ts) over a real libSQL file shared by two
// stores, as two processes share it: every event reaches each hub once, in id order.
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { RunEvent } from '../../src/core/domain.ts'
import type { Store } from '../../src/db/store.ts'
import { LocalHub } from '../../src/runtime/local/hub.ts'
import { LocalLedger } from '../../src/runtime/local/ledger.ts'
import { EventTail } from '../../src/runtime/local/tail.ts'
import { dataVersionOf, fileWatchOf, withWriteConnection } from '../../src/runtime/local/write-connection.ts'
import { createClient } from '@libsql/client'
import { drizzle } from 'drizzle-orm/libsql'
import { schema, Store as StoreClass } from '../../src/db/store.ts'
import { tempDatabase } from '../helpers/jobs.ts'
import { until } from '../helpers/server.ts'

const row = (id: string) => ({
  id, tenantId: 't', workflowId: 'wf', status: 'queued' as const, variables: {}, runtimeVariables: {}, tags: ['x'], connectorState: {}, outputKeys: [],
  lastSeq: 1, transientErrors: 0, polls: 0, createdAt: 1, updatedAt: 1,
})

/** One "process": its own connection, hub, tail and ledger, and a feed subscriber recording what it gets. */
async function node(store: Store, intervalMs = 0, dataVersion?: () => number, watchFile?: (onChange: () => void) => () => void) {
  const hub = new LocalHub()
  const tail = new EventTail(store, hub, { intervalMs, log: () => {}, dataVersion, watchFile, sleepPeriodMs: 5_000 })
  await tail.start()
  const ledger = new LocalLedger(store, tail, () => 1_000)
  const feed: RunEvent[] = []
  hub.subscribeFeed('t', {}, { push: (events) => { feed.push(...events) } })
  return { hub, tail, ledger, feed, store }
}

describe('EventTail', () => {
  let db: Awaited<ReturnType<typeof tempDatabase>>
  const stops: Array<() => void> = []
  beforeEach(async () => { db = await tempDatabase() })
  afterEach(() => { for (const s of stops.splice(0)) s(); db.close() })

  it('one process: every commit is published at once, without reading the table', async () => {
    const a = await node(db.store, 10)
    stops.push(() => a.tail.stop())
    const runs = await Promise.all(['r1', 'r2', 'r3'].map((id) => a.ledger.create(row(id), { type: 'run.created', data: {} })))
    for (let i = 0; i < 5; i++) await Promise.all(runs.map(({ run }, k) => a.ledger.commit({ ...run, lastSeq: 1 + i }, {}, [{ type: 'run.progress', data: { i, k } }])))
    await new Promise((r) => setTimeout(r, 50)) // a few periodic reads happen
    expect(a.feed.map((e) => e.id)).toEqual(Array.from({ length: 18 }, (_, i) => i + 1))
    expect(a.tail.stats).toMatchObject({ direct: 18, fromTable: 0 })
    // The periods found nothing past the cursor: each was one probe of the highest id, never a read of the rows.
    expect(a.tail.stats.probes).toBeGreaterThan(0)
    expect(a.tail.stats.reads).toBe(0)
  })

  it('two processes committing interleaved: each hub gets every event once, in id order (a gap waits for the read)', async () => {
    const a = await node(db.store)
    const b = await node(await db.open())
    // No period and no bus: the other process's events come only with a wake (as a bus notice would).
    const writers = [a, b]
    const created = await Promise.all(writers.map((w, i) => w.ledger.create(row(`run${i}`), { type: 'run.created', data: {} })))
    const runs = created.map((c) => c.run)
    for (let i = 0; i < 20; i++) {
      const k = i % 2, w = writers[k]!
      const r = await w.ledger.commit(runs[k]!, {}, [{ type: 'run.progress', data: { i } }, { type: 'run.output', data: { i } }])
      runs[k] = r.run
      if (i % 3 === 0) writers[1 - k]!.tail.notified(r.events[r.events.length - 1]!.id)
    }
    for (const w of writers) w.tail.wake()
    const total = 2 + 20 * 2
    await until(() => a.feed.length >= total && b.feed.length >= total, 5_000, 'both feeds complete')
    await new Promise((r) => setTimeout(r, 50))
    for (const w of writers) {
      expect(w.feed.map((e) => e.id)).toEqual(Array.from({ length: total }, (_, i) => i + 1))
      expect(w.tail.position).toBe(total)
    }
    // Some of each process's own commits followed the other's: those went through a read, in id order.
    expect(a.tail.stats.fromTable + b.tail.stats.fromTable).toBeGreaterThan(total)
  })

  it('drops the cached history of a run another process wrote before publishing its events', async () => {
    const a = await node(db.store)
    const readerStore = await db.open()
    readerStore.enableReadCache(5_000)
    const b = await node(readerStore)
    const { run } = await a.ledger.create(row('r'), { type: 'run.created', data: {} })
    b.tail.wake()
    await until(() => b.feed.length === 1, 5_000, 'created event on b')
    expect(await readerStore.runs.events('r', 0, 100)).toHaveLength(1) // now cached on b
    await a.ledger.commit(run, {}, [{ type: 'run.progress', data: {} }])
    b.tail.wake()
    await until(() => b.feed.length === 2, 5_000, 'progress event on b')
    // A subscriber connecting on b now replays from the cache: it must hold the event just published.
    expect((await readerStore.runs.events('r', 0, 100)).map((e) => e.seq)).toEqual([1, 2])
  })

  it('idle periods skip their probe while the file\'s change counter stands still, and another process\'s commit is still found by the next period', async () => {
    // Process A commits through a write connection (as the local runtimes do); its tail reads the counter there.
    const client = createClient({ url: `file:${db.path}`, timeout: 5_000 })
    stops.push(() => client.close())
    withWriteConnection(client, db.path, 5_000)
    const storeA = new StoreClass(drizzle(client, { schema }))
    const a = await node(storeA, 10, dataVersionOf(client))
    stops.push(() => a.tail.stop())
    const b = await node(await db.open())
    await new Promise((r) => setTimeout(r, 30))
    const { run } = await a.ledger.create(row('ra'), { type: 'run.created', data: {} })
    await a.ledger.commit(run, {}, [{ type: 'run.progress', data: {} }])
    await new Promise((r) => setTimeout(r, 80))
    // Its own commits were published directly and do not move the counter its connection sees: no probe at all after the first.
    expect(a.tail.stats.probes).toBeLessThanOrEqual(1)
    expect(a.tail.stats.skipped).toBeGreaterThan(3)
    expect(a.tail.stats.reads).toBe(0)
    // B commits (no notice, no bus): A's next period sees the counter move and reads B's events.
    await b.ledger.create(row('rb'), { type: 'run.created', data: {} })
    await until(() => a.feed.length === 3, 5_000, 'b\'s event on a')
    expect(a.feed.map((e) => e.run_id)).toEqual(['ra', 'ra', 'rb'])
    expect(a.tail.stats.fromTable).toBe(1)
  })
  it('hands every period\'s counter to onPeriod (the read-cache sync rides on it), skipped periods included', async () => {
    let version = 7
    const seen: Array<number | undefined> = []
    const tail = new EventTail(await db.open(), new LocalHub(), { intervalMs: 10, log: () => {}, dataVersion: () => version, onPeriod: (v) => seen.push(v) })
    await tail.start()
    stops.push(() => tail.stop())
    await until(() => seen.length >= 3, 2_000, 'three periods')
    version = 8
    await until(() => seen.includes(8), 2_000, 'the moved counter')
    expect(seen.filter((v) => v !== 7 && v !== 8)).toEqual([])
    expect(tail.stats.skipped).toBeGreaterThan(0)
  })

  it('sleeps once its counter stood still for a second, and wakes at once on another process\'s commit to the file', async () => {
    const client = createClient({ url: `file:${db.path}`, timeout: 5_000 })
    stops.push(() => client.close())
    withWriteConnection(client, db.path, 5_000)
    const storeA = new StoreClass(drizzle(client, { schema }))
    const a = await node(storeA, 10, dataVersionOf(client), fileWatchOf(client))
    stops.push(() => a.tail.stop())
    const b = await node(await db.open())
    // Its own commit does not keep it awake: its connection's counter does not move for it.
    const { run } = await a.ledger.create(row('ra'), { type: 'run.created', data: {} })
    await until(() => a.tail.asleep, 3_000, 'a asleep')
    // Asleep, a period is 5 s here: over 300 ms none, against 30 at 10 ms.
    const skipped = a.tail.stats.skipped
    await new Promise((r) => setTimeout(r, 300))
    expect(a.tail.stats.skipped - skipped).toBe(0)
    // B commits (no notice, no bus): the file's change wakes A, which reads B's event long before its sleeping period ends.
    const t0 = performance.now()
    await b.ledger.create(row('rb'), { type: 'run.created', data: {} })
    await until(() => a.feed.length === 2, 5_000, 'b\'s event on a')
    expect(performance.now() - t0).toBeLessThan(400)
    expect(a.feed.map((e) => e.run_id)).toEqual(['ra', 'rb'])
    expect(a.tail.asleep).toBe(false)
    // A's own commit while asleep wakes it too (the file changed), and it falls asleep again.
    await until(() => a.tail.asleep, 3_000, 'a asleep again')
    const sleeps = a.tail.stats.sleeps
    await a.ledger.commit(run, {}, [{ type: 'run.progress', data: {} }])
    await until(() => a.tail.stats.sleeps > sleeps, 3_000, 'a asleep after its own commit')
    expect(a.feed).toHaveLength(3)
  })

  it('never sleeps when the file cannot be watched, and says so once', async () => {
    const logs: string[] = []
    let version = 1
    const tail = new EventTail(await db.open(), new LocalHub(), {
      intervalMs: 10, log: (m) => logs.push(m), dataVersion: () => version, watchFile: () => { throw new Error('ENOSPC') },
    })
    await tail.start()
    stops.push(() => tail.stop())
    await new Promise((r) => setTimeout(r, 1_300))
    version = 2
    await new Promise((r) => setTimeout(r, 1_300))
    expect(tail.asleep).toBe(false)
    expect(tail.stats.sleeps).toBe(0)
    // Still every 10 ms: far more periods than a sleeping tail's one a second.
    expect(tail.stats.skipped).toBeGreaterThan(100)
    expect(logs.filter((m) => m.includes('cannot watch'))).toHaveLength(1)
  })
})
