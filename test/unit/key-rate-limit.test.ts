/**
 * KeyRateLimiter over real libSQL (key_rate_buckets), on a virtual clock: limiters that share a
 * database keep one key's limit together within the stated bound; one alone is the in-memory
 * bucket it always was; a database that fails leaves each limiting on its own, logged once.
 */
import { rmSync } from 'node:fs'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { Store } from '../../src/db/store.ts'
import { KeyRateLimiter, type KeyRateSync } from '../../src/http/rate-limit.ts'
import { migratedStore } from '../helpers/store.ts'

const PER_MINUTE = 600
const SYNC_MS = 250
const accept = (l: KeyRateLimiter, key: string) => { try { l.take(key); return true } catch { return false } }

describe('KeyRateLimiter shared through the database', () => {
  let dir: string
  let store: Store
  let now: number
  beforeEach(async () => {
    ;({ dir, store } = await migratedStore('key-rate'))
    now = 1_000_000
  })
  afterEach(() => rmSync(dir, { recursive: true, force: true }))

  const limiter = (id: string, sync: KeyRateSync = store.keyRates(id, 3_000), log?: (m: string) => void) =>
    new KeyRateLimiter(PER_MINUTE, () => now, undefined, { sync, intervalMs: 3_600_000, log })

  /** Hammer `key` on every limiter (`perStep` tries each 10 ms) for `ms`; limiter i syncs every SYNC_MS, offset by i × offsetMs. */
  async function hammer(ls: KeyRateLimiter[], key: string, ms: number, perStep: number, offsetMs: number): Promise<number[]> {
    const accepted = ls.map(() => 0)
    for (let t = 0; t < ms; t += 10) {
      now += 10
      for (let i = 0; i < ls.length; i++) {
        if ((t + 10 - i * offsetMs) % SYNC_MS === 0) await ls[i]!.syncNow()
        for (let k = 0; k < perStep; k++) if (accept(ls[i]!, key)) accepted[i]!++
      }
    }
    return accepted
  }

  it('3 limiters hammering one key with staggered syncs accept the limit plus at most (N-1)/N of the bucket', async () => {
    const ls = ['a', 'b', 'c'].map((id) => limiter(id))
    for (const l of ls) await l.syncNow() // as start() does: every limiter knows there are 3
    const ms = 10_000
    const accepted = await hammer(ls, 'key:k1', ms, 20, 80)
    const total = accepted.reduce((a, b) => a + b, 0)
    const refill = (PER_MINUTE * ms) / 60_000
    expect(total).toBeLessThanOrEqual(PER_MINUTE + refill + (2 / 3) * PER_MINUTE)
    expect(total).toBeGreaterThanOrEqual(PER_MINUTE)
    // Per-process buckets would have let each limiter take the whole limit.
    expect(total).toBeLessThan(3 * PER_MINUTE)
    // Every limiter got a share: none was starved.
    for (const a of accepted) expect(a).toBeGreaterThan(PER_MINUTE / 10)
    // Steady state: the last 5 s get the rate (plus the bound on one period's worth), not 3 times it.
    const tail = await hammer(ls, 'key:k1', 5_000, 20, 80)
    expect(tail.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual((PER_MINUTE * 5_000) / 60_000 + 3 * (PER_MINUTE * SYNC_MS) / 60_000 + 3)
  })

  it('one limiter alone on the database accepts what the in-memory bucket accepts (within 3 requests at every moment)', async () => {
    const synced = limiter('solo')
    await synced.syncNow()
    const plain = new KeyRateLimiter(PER_MINUTE, () => now)
    const seq: Array<[boolean, boolean]> = []
    for (let t = 0; t < 20_000; t += 10) {
      now += 10
      if (t % SYNC_MS === 0) await synced.syncNow()
      for (let k = 0; k < (t < 5_000 ? 3 : 1); k++) seq.push([accept(synced, 'key:solo'), accept(plain, 'key:solo')])
    }
    // The database's bucket refills between syncs where the local one caps at each request: a few requests apart at most, never drifting.
    let a = 0, b = 0, worst = 0
    for (const [x, y] of seq) { a += +x; b += +y; worst = Math.max(worst, Math.abs(a - b)) }
    expect(worst).toBeLessThanOrEqual(3)
    expect(seq.filter(([a]) => a).length).toBeGreaterThan(PER_MINUTE)
  })

  it('a database that fails: each limiter limits on its own, logged once, and catches up when it is back', async () => {
    const real = store.keyRates('flaky', 3_000)
    let down = false
    const logs: string[] = []
    const flaky: KeyRateSync = { sync: (...a) => (down ? Promise.reject(new Error('SQLITE_BUSY')) : real.sync(...a)), leave: () => real.leave() }
    const l = limiter('flaky', flaky, (m) => logs.push(m))
    await l.syncNow()
    down = true
    let accepted = 0
    for (let i = 0; i < PER_MINUTE + 50; i++) if (accept(l, 'key:f')) accepted++
    for (let i = 0; i < 3; i++) await l.syncNow()
    expect(accepted).toBe(PER_MINUTE)
    expect(logs.length).toBe(1)
    down = false
    await l.syncNow()
    expect(logs.length).toBe(2)
    // What was accepted while the database was down reached the shared bucket: another process sees it spent.
    const other = limiter('other')
    await other.syncNow()
    expect(accept(other, 'key:f')).toBe(true) // a new key here starts full until its first sync…
    await other.syncNow()
    expect(accept(other, 'key:f')).toBe(false) // …then it knows the bucket is empty
  })

  it('a limiter that accepted nothing syncs once a second, not every period; one request makes the next period sync', async () => {
    const real = store.keyRates('idle', 3_000)
    let syncs = 0
    const counted: KeyRateSync = { sync: (...a) => { syncs++; return real.sync(...a) }, leave: () => real.leave() }
    const l = limiter('idle', counted)
    await l.syncNow()
    accept(l, 'key:i')
    now += SYNC_MS
    await l.syncNow() // pushes the one request
    const before = syncs
    for (let t = 0; t < 4_000; t += SYNC_MS) { now += SYNC_MS; await l.syncNow() }
    // 16 periods without a request: 4 syncs (the heartbeat), not 16.
    expect(syncs - before).toBe(4)
    accept(l, 'key:i')
    now += SYNC_MS
    const idleBefore = syncs
    await l.syncNow()
    expect(syncs - idleBefore).toBe(1)
    // A minute without a request for any key: the heartbeat stops (the process takes no share, writes nothing)…
    for (let t = 0; t < 60_000; t += SYNC_MS) { now += SYNC_MS; await l.syncNow() }
    const dormantFrom = syncs
    for (let t = 0; t < 10_000; t += SYNC_MS) { now += SYNC_MS; await l.syncNow() }
    expect(syncs - dormantFrom).toBe(0)
    // …until the next request, which syncs at once (not a period later), carrying that request.
    expect(accept(l, 'key:i')).toBe(true)
    await new Promise((r) => setTimeout(r, 50))
    expect(syncs - dormantFrom).toBe(1)
    const other = limiter('other')
    await other.syncNow()
    expect(other['processes']).toBe(2)
  })
})
