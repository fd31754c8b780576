/**
 * The per-API-key rate limit (RUNRELAY_RATE_LIMIT_PER_MINUTE) holds across 3 real server
 * processes on one database file: one key hammered through all of them gets about the limit,
 * not 3 times it; one key through one process gets the limit as before (429 with Retry-After).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { clusterTenant, startCluster, type Cluster } from '../helpers/cluster.ts'
import { recordFigures } from '../reliability/figures.ts'

const PROCESSES = 3
const PER_MINUTE = 60
const SYNC_MS = 250
const HAMMER_MS = 4_000
/** Requests in flight per process: far more than the limit allows in HAMMER_MS, bounded in count and time. */
const CONCURRENCY = 4

interface Tally { accepted: number; limited: number; other: number; retryAfter: Set<string>; sent: number }

/** Send GET /v1/workflows with `key` to each of `procs` (CONCURRENCY at a time each) for `ms`; what came back. */
async function hammer(cluster: Cluster, key: string, procs: number[], ms: number): Promise<Tally> {
  const tally: Tally = { accepted: 0, limited: 0, other: 0, retryAfter: new Set(), sent: 0 }
  const deadline = Date.now() + ms
  const worker = async (i: number) => {
    // Bounded by time, and by count as well (a very fast machine still stops).
    for (let n = 0; Date.now() < deadline && n < 20_000; n++) {
      tally.sent++
      const res = await fetch(`${cluster.url(i)}/v1/workflows?limit=1`, { headers: { authorization: `Bearer ${key}` }, signal: AbortSignal.timeout(10_000) })
      await res.arrayBuffer()
      if (res.status === 200) tally.accepted++
      else if (res.status === 429) { tally.limited++; tally.retryAfter.add(res.headers.get('retry-after') ?? 'missing') }
      else tally.other++
    }
  }
  await Promise.all(procs.flatMap((i) => Array.from({ length: CONCURRENCY }, () => worker(i))))
  return tally
}

describe('multiprocess: the per-API-key rate limit is shared by 3 processes', () => {
  let cluster: Cluster
  const figures: Record<string, unknown> = { per_minute: PER_MINUTE, sync_ms: SYNC_MS, hammer_ms: HAMMER_MS, processes: PROCESSES }

  beforeAll(async () => {
    cluster = await startCluster(PROCESSES, { RUNRELAY_RATE_LIMIT_PER_MINUTE: String(PER_MINUTE), RUNRELAY_RATE_LIMIT_SYNC_MS: String(SYNC_MS) })
  }, 300_000)
  afterAll(async () => {
    await cluster?.close()
    recordFigures('multiprocess-rate-limit', figures)
  })

  it('one key through all processes: accepted stays within the limit plus one sync period of the others\' traffic', async () => {
    const { key } = await clusterTenant(cluster, 'hammer-all')
    const started = Date.now()
    const t = await hammer(cluster, key, [0, 1, 2], HAMMER_MS)
    const elapsed = Date.now() - started
    const refill = (PER_MINUTE * elapsed) / 60_000
    // The stated bound (README): the burst, the refill over the run, and what the others could take on a stale view:
    // each process spends at most 1/N of the tokens it saw, so at most (N-1)/N of the bucket beyond the limit.
    const bound = PER_MINUTE + refill + ((PROCESSES - 1) / PROCESSES) * PER_MINUTE
    Object.assign(figures, { all_sent: t.sent, all_accepted: t.accepted, all_limited: t.limited, all_elapsed_ms: elapsed, all_bound: Math.floor(bound), all_per_process_would_allow: Math.floor(PROCESSES * (PER_MINUTE + refill)) })
    expect(t.other).toBe(0)
    // Enough traffic that per-process limits would have let far more through than the shared one does.
    expect(t.sent, 'the clients sent more than 3 processes would each allow').toBeGreaterThan(PROCESSES * (PER_MINUTE + refill))
    expect(t.accepted).toBeLessThanOrEqual(bound)
    expect(t.accepted, 'the limit is not stricter than configured').toBeGreaterThanOrEqual(PER_MINUTE * 0.9)
    expect(t.retryAfter.has('missing')).toBe(false)
  }, 60_000)

  it('one key through one process (the others idle): the limit as before, 429 with Retry-After', async () => {
    const { key } = await clusterTenant(cluster, 'hammer-one')
    const started = Date.now()
    const t = await hammer(cluster, key, [1], HAMMER_MS)
    const elapsed = Date.now() - started
    const refill = (PER_MINUTE * elapsed) / 60_000
    Object.assign(figures, { one_sent: t.sent, one_accepted: t.accepted, one_limited: t.limited, one_elapsed_ms: elapsed })
    expect(t.other).toBe(0)
    expect(t.limited).toBeGreaterThan(0)
    expect(t.accepted).toBeLessThanOrEqual(PER_MINUTE + refill + 1)
    // It spends its 1/3 share of what is left each sync period: over 16 periods nearly the whole burst.
    expect(t.accepted).toBeGreaterThanOrEqual(PER_MINUTE * 0.9)
    expect([...t.retryAfter].every((v) => /^[1-9]\d*$/.test(v)), [...t.retryAfter].join(',')).toBe(true)
  }, 60_000)
})
