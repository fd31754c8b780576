import { describe, expect, it } from 'vitest'
import { RateBudget } from '../../src/core/rate-budget.ts'

/** A virtual clock: sleeping advances it, so the budget is tested without waiting. */
function virtual() {
  let now = 1_000_000
  const sleeps: number[] = []
  const sleep = async (ms: number) => { sleeps.push(ms); now += ms }
  return { now: () => now, sleep, sleeps, advance: (ms: number) => { now += ms } }
}

/** Take `n` tokens concurrently and record the virtual time each was granted. */
async function grants(budget: RateBudget, clock: { now(): number }, key: string, rps: number, n: number): Promise<number[]> {
  const at: number[] = []
  await Promise.all(Array.from({ length: n }, () => budget.take(key, rps).then(() => at.push(clock.now()))))
  return at
}

const maxInWindow = (times: number[], windowMs: number) =>
  Math.max(...times.map((t0) => times.filter((t) => t >= t0 && t < t0 + windowMs).length))

describe('RateBudget', () => {
  it('grants a burst of one second\'s worth at once, then paces at the rate', async () => {
    const c = virtual()
    const budget = new RateBudget(c.now, c.sleep)
    const start = c.now()
    const at = await grants(budget, c, 'con_a', 5, 20)
    expect(at.slice(0, 5).every((t) => t === start)).toBe(true)
    // Then one every 200 ms: 20 requests take (20 - 5) / 5 = 3 s.
    expect(at.at(-1)! - start).toBe(3_000)
    const after = at.slice(5)
    after.slice(1).forEach((t, i) => expect(t - after[i]!).toBe(200))
    // Any 1 s window: the burst plus one second's refill at most; after the burst, the rate.
    expect(maxInWindow(at, 1_000)).toBeLessThanOrEqual(10)
    expect(maxInWindow(after, 1_000)).toBeLessThanOrEqual(5)
  })

  it('hands tokens out in the order they were asked for', async () => {
    const c = virtual()
    const budget = new RateBudget(c.now, c.sleep)
    const order: number[] = []
    await Promise.all(Array.from({ length: 8 }, (_, i) => budget.take('k', 2).then(() => order.push(i))))
    expect(order).toEqual([0, 1, 2, 3, 4, 5, 6, 7])
  })

  it('keeps one bucket per key: connections do not share a budget', async () => {
    const c = virtual()
    const budget = new RateBudget(c.now, c.sleep)
    const start = c.now()
    await grants(budget, c, 'a', 3, 3)
    const b = await grants(budget, c, 'b', 3, 3)
    expect(b.every((t) => t === start)).toBe(true)
    expect(c.sleeps).toEqual([])
  })

  it('refills while idle, never beyond one second\'s worth', async () => {
    const c = virtual()
    const budget = new RateBudget(c.now, c.sleep)
    await grants(budget, c, 'k', 4, 4)
    c.advance(60_000)
    const start = c.now()
    const at = await grants(budget, c, 'k', 4, 6)
    expect(at.filter((t) => t === start)).toHaveLength(4)
    expect(at.at(-1)! - start).toBe(500)
  })

  it('allows at least one request at a time for rates below 1 per second', async () => {
    const c = virtual()
    const budget = new RateBudget(c.now, c.sleep)
    const start = c.now()
    const at = await grants(budget, c, 'slow', 0.5, 3)
    expect(at).toEqual([start, start + 2_000, start + 4_000])
  })
})
