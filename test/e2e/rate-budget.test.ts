/**
 * The per-connection rate budget end to end: many runs on one connection share one token
 * bucket, so the upstream never sees more than the connection's requests per second (after
 * the first second's burst), however many runs poll it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startFakePipelineGeneration, type FakePipelineGeneration } from '../fakes/pipelinegeneration.ts'
import { sleep } from '../helpers/live.ts'
import { providerTenant } from '../helpers/providers.ts'
import { startTestServer, until, type TestServer } from '../helpers/server.ts'

let server: TestServer
let fake: FakePipelineGeneration
let other: FakePipelineGeneration

beforeAll(async () => {
  server = await startTestServer()
  fake = await startFakePipelineGeneration()
  other = await startFakePipelineGeneration()
}, 60_000)
afterAll(async () => {
  await server?.stop()
  await fake?.close()
  await other?.close()
})

/** Arrival times (ms) of every request the fake receives from now on. */
function stamp(f: FakePipelineGeneration): number[] {
  const times: number[] = []
  const push = f.requests.push.bind(f.requests)
  f.requests.push = (...items) => { for (let i = 0; i < items.length; i++) times.push(performance.now()); return push(...items) }
  return times
}
const maxInWindow = (times: number[], windowMs: number) =>
  Math.max(0, ...times.map((t0) => times.filter((t) => t >= t0 && t < t0 + windowMs).length))

describe('per-connection rate budget', () => {
  it('12 runs on a 5 rps connection: at most 5 requests in any 1 s window after the first second\'s burst', async () => {
    const t = await providerTenant(server, 'budget')
    const RPS = 5
    const conn = await t.connection('pipelinegeneration', fake.url, { apiKey: 'pg-key' }, { rate_limit_per_second: RPS })
    // Unlimited control connection to another fake: the budget is per connection.
    const free = await t.connection('pipelinegeneration', other.url, { apiKey: 'pg-key' })
    const wf = await t.workflow(conn, 'wf_abc123', { poll_policy: { first_interval_ms: 100, max_interval_ms: 100 } })
    const wfFree = await t.workflow(free, 'wf_abc123', { poll_policy: { first_interval_ms: 100, max_interval_ms: 100 } })
    const times = stamp(fake)
    const freeTimes = stamp(other)
    const runs = await Promise.all(Array.from({ length: 12 }, () => t.trigger(wf)))
    const freeRuns = await Promise.all(Array.from({ length: 3 }, () => t.trigger(wfFree)))
    await sleep(3_000)
    const observed = [...times]
    const elapsed = (observed.at(-1)! - observed[0]!) / 1000

    // Demand (12 runs polling every 100 ms = 120 rps) far exceeds the budget, so it is binding.
    expect(observed.length).toBeGreaterThanOrEqual(RPS * 2)
    expect(observed.length).toBeLessThanOrEqual(RPS + Math.ceil(RPS * elapsed) + 1)
    // Times are arrivals at the fake, not sends: one request of slack in each window for a request
    // that left on time but arrived late (the first second: the full bucket, then its refills).
    expect(maxInWindow(observed, 1_000)).toBeLessThanOrEqual(2 * RPS + 1)
    const afterBurst = observed.filter((x) => x >= observed[0]! + 1_000)
    expect(maxInWindow(afterBurst, 1_000)).toBeLessThanOrEqual(RPS + 1)
    expect(fake.rateLimited).toBe(0)
    // The unlimited connection's 3 runs polled at their own pace meanwhile.
    expect(maxInWindow(freeTimes, 1_000)).toBeGreaterThan(2 * RPS)

    // Every run still finishes (fairly: tokens are handed out in order).
    for (const e of fake.state.executions.values()) fake.advance(e.execution_id, 'completed')
    for (const e of other.state.executions.values()) other.advance(e.execution_id, 'completed')
    await until(async () => {
      const all = await Promise.all([...runs, ...freeRuns].map((id) => t.run(id)))
      return all.every((r) => r.status === 'completed')
    }, 15_000, 'all runs to complete')
  }, 30_000)
})
