import { rmSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { pollDelay } from '../../src/core/backoff.ts'
import { PollPolicy } from '../../src/core/domain.ts'
import { fitDurations, MIN_SAMPLES, nextPollDelay } from '../../src/core/poll-planner.ts'
import { schema } from '../../src/db/store.ts'
import { migratedStore, rawDb } from '../helpers/store.ts'

const policy = PollPolicy.parse({ firstIntervalMs: 1000, maxIntervalMs: 60_000 })
const half = () => 0.5
/** Durations drawn log-normally around `medianMs` (sigma 0.5; a seeded generator, so the same every run). */
function lognormalSample(medianMs: number, n: number, seed = 42): number[] {
  let a = seed
  const uniform = () => { a = (a + 0x6d2b79f5) | 0; let t = Math.imul(a ^ (a >>> 15), 1 | a); t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t; return ((t ^ (t >>> 14)) >>> 0) / 4294967296 }
  return Array.from({ length: n }, () => medianMs * Math.exp(0.5 * Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform())))
}

describe('adaptive poll planning', () => {
  it('has no model until the workflow has enough finished runs, and then backs off as before', () => {
    expect(fitDurations(lognormalSample(30_000, MIN_SAMPLES - 1))).toBeUndefined()
    for (const unchanged of [0, 1, 3]) expect(nextPollDelay(policy, undefined, 5_000, unchanged, half)).toBe(pollDelay(policy, unchanged, half))
  })

  it('fits the median and spread of the durations', () => {
    const m = fitDurations(lognormalSample(30_000, 200))!
    expect(Math.exp(m.mu)).toBeGreaterThan(28_000)
    expect(Math.exp(m.mu)).toBeLessThan(32_000)
    expect(m.sigma).toBeGreaterThan(0.4)
    expect(m.sigma).toBeLessThan(0.6)
  })

  it('polls sparsely before runs usually end, densely around their usual end, and never outside the policy', () => {
    const m = fitDurations(lognormalSample(30_000, 200))!
    const early = nextPollDelay(policy, m, 1_000, 0, half)
    const atMedian = nextPollDelay(policy, m, 30_000, 5, half)
    const late = nextPollDelay(policy, m, 600_000, 50, half)
    expect(early).toBeGreaterThan(5_000) // the first poll skips the stretch where almost no run ends
    expect(atMedian).toBe(policy.firstIntervalMs) // where runs end: every first interval
    expect(late).toBe(policy.maxIntervalMs) // far past every run seen: the policy's cap
    // Adaptive polling off: the backoff, whatever the history.
    const off = PollPolicy.parse({ ...policy, adaptive: false })
    expect(nextPollDelay(off, m, 1_000, 0, half)).toBe(pollDelay(off, 0, half))
  })

  it('learns from the store: the newest completed and failed runs of the workflow, started → finished', async () => {
    const { dir, store } = await migratedStore('planner')
    try {
      const t0 = 1_700_000_000_000
      const rows = [
        ...lognormalSample(30_000, 12).map((d, i) => ({ status: 'completed', d, i })),
        { status: 'canceled', d: 1, i: 100 }, // a user's cancel says nothing about how long the work takes
        { status: 'running', d: 5, i: 101 },
      ]
      for (const r of rows) {
        await rawDb(store).insert(schema.runs).values({
          id: `run_${r.i}`, tenantId: 't', workflowId: 'wf', status: r.status, variables: {}, runtimeVariables: {}, tags: [], connectorState: {}, outputKeys: [],
          lastSeq: 1, transientErrors: 0, polls: 0, createdAt: t0 + r.i, updatedAt: t0 + r.i, startedAt: t0, finishedAt: r.status === 'running' ? null : t0 + r.d,
        } as typeof schema.runs.$inferInsert)
      }
      const durations = await store.runs.workflowDurations('wf', 200)
      expect(durations).toHaveLength(12)
      expect(Math.exp(fitDurations(durations)!.mu)).toBeGreaterThan(25_000)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
