// The due-time index of the run host (src/runtime/local/due-queue.ts, one timer for every held run):
// one timer, earliest due first, a bound on work in flight, and a backlog that grows evenly.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { DueQueue } from '../../src/runtime/local/due-queue.ts'

describe('DueQueue', () => {
  beforeEach(() => { vi.useFakeTimers({ now: 1_000_000 }) })
  afterEach(() => { vi.useRealTimers() })

  it('runs each key at its due time, in due-time order, with one timer armed', async () => {
    const ran: Array<[string, number]> = []
    const q = new DueQueue({ now: () => Date.now(), run: async (k) => { ran.push([k, Date.now() - 1_000_000]) }, maxInFlight: 10, slackMs: 0 })
    q.schedule('c', 1_000_300)
    q.schedule('a', 1_000_100)
    q.schedule('b', 1_000_200)
    q.schedule('b', 1_000_250) // later than its due time: kept at 200
    q.schedule('c', 1_000_050) // earlier: moves up
    expect(vi.getTimerCount()).toBe(1)
    await vi.advanceTimersByTimeAsync(400)
    expect(ran).toEqual([['c', 50], ['a', 100], ['b', 200]])
    expect(q.size).toBe(0)
    q.stop()
  })

  it('cancel forgets a key; stop forgets every key', async () => {
    const ran: string[] = []
    const q = new DueQueue({ now: () => Date.now(), run: async (k) => { ran.push(k) }, maxInFlight: 10 })
    for (const k of ['a', 'b', 'c', 'd']) q.schedule(k, 1_000_000 + 10 * k.charCodeAt(0))
    q.cancel('b')
    q.cancel('zz')
    await vi.advanceTimersByTimeAsync(2_000)
    expect(ran).toEqual(['a', 'c', 'd'])
    q.schedule('e', 1_000_000 + 5_000)
    q.stop()
    await vi.advanceTimersByTimeAsync(10_000)
    expect(ran).toEqual(['a', 'c', 'd'])
  })

  it('overloaded: at most maxInFlight run at once, the earliest due goes first, and the backlog shows how late', async () => {
    const started: string[] = []
    const q = new DueQueue({ now: () => Date.now(), run: (k) => { started.push(k); return new Promise((r) => setTimeout(r, 100)) }, maxInFlight: 2, slackMs: 0 })
    // Six runs due at once (0..5 ms apart): two start, the other four wait, in due order.
    for (let i = 5; i >= 0; i--) q.schedule(`r${i}`, 1_000_000 + i)
    await vi.advanceTimersByTimeAsync(10)
    expect(started).toEqual(['r0', 'r1'])
    expect(q.running).toBe(2)
    expect(q.backlog()).toEqual({ due: 4, lagMs: 8 })
    // A run due later than the waiting ones does not jump the queue.
    q.schedule('late', 1_000_020)
    await vi.advanceTimersByTimeAsync(100)
    expect(started).toEqual(['r0', 'r1', 'r2', 'r3'])
    await vi.advanceTimersByTimeAsync(300)
    expect(started).toEqual(['r0', 'r1', 'r2', 'r3', 'r4', 'r5', 'late'])
    expect(q.backlog().due).toBe(0)
    q.stop()
  })

  it('a run that throws or rejects frees its slot', async () => {
    let n = 0
    const q = new DueQueue({ now: () => Date.now(), run: (k) => { n++; if (k === 'sync') throw new Error('boom'); return Promise.reject(new Error('no')) }, maxInFlight: 1 })
    q.schedule('sync', 1_000_000)
    q.schedule('async', 1_000_001)
    q.schedule('third', 1_000_002)
    await vi.advanceTimersByTimeAsync(50)
    expect(n).toBe(3)
    q.stop()
  })
})

describe('DueQueue: a turn of the event loop', () => {
  it('starts at most maxStartsPerTurn runs per turn, so I/O waiting behind a backlog is handled between them', async () => {
    // Real timers: what matters is what runs between turns (an incoming request's callback).
    const started: number[] = []
    let turn = 0
    const never = new Promise<void>(() => {})
    const q = new DueQueue({ now: () => Date.now(), run: () => { started.push(turn); return never }, maxInFlight: 1_000, slackMs: 0, maxStartsPerTurn: 10 })
    // Counts the turns of the loop: an immediate queued by an immediate runs in the next turn.
    let counting = true
    const count = () => { turn++; if (counting) setImmediate(count) }
    setImmediate(count)
    const turns = new Promise((r) => setTimeout(r, 50))
    for (let i = 0; i < 45; i++) q.schedule(`run-${i}`, Date.now() - 1)
    await turns
    counting = false
    q.stop()
    expect(started).toHaveLength(45)
    const perTurn = new Map<number, number>()
    for (const t of started) perTurn.set(t, (perTurn.get(t) ?? 0) + 1)
    expect(Math.max(...perTurn.values())).toBeLessThanOrEqual(10)
    expect(perTurn.size).toBeGreaterThanOrEqual(5)
  })
})
