/**
 * Triggers at most once across processes: 3 real servers on one database file, a counting
 * upstream that ignores Idempotency-Key (as the five vendors do) and answers triggers late
 * (so kills land while triggers are on the wire), runs created on every process, a random
 * process SIGKILLed and restarted each round. No run may start two jobs upstream; a run
 * whose trigger outcome was lost must end `failed` with trigger_outcome_unknown; every run
 * finishes with a gapless history.
 *
 * `npm test` runs 3 rounds × 100 runs; `npm run test:soak` (RUNRELAY_SOAK=1) 10 rounds × 200.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startGenericUpstream, type GenericUpstream, type Step } from '../fakes/generic-upstream.ts'
import { allRuns, clusterTenant, countedWorkflow, printClusterLogs, startCluster, type Cluster } from '../helpers/cluster.ts'
import { until } from '../helpers/server.ts'
import { recordFigures } from '../reliability/figures.ts'
import { logFigures } from '../helpers/figures.ts'

const SOAK = process.env.RUNRELAY_SOAK === '1'
const ROUNDS = SOAK ? 10 : 3
const RUNS = SOAK ? 200 : 100
const PROCESSES = 3
const TTL_MS = 3_000
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe(`multiprocess: ${ROUNDS} SIGKILL rounds × ${RUNS} runs on ${PROCESSES} processes, upstream ignoring Idempotency-Key`, () => {
  let cluster: Cluster
  let upstream: GenericUpstream
  let tenant: Awaited<ReturnType<typeof clusterTenant>>
  let workflowId: string
  // Six polls "running", then completed: about a second of polling per run.
  const script: Step[] = [...Array.from({ length: 6 }, (_, i) => ({ status: 'running', progress: (i + 1) / 7 })), { status: 'completed', result: { done: true } }]

  beforeAll(async () => {
    upstream = await startGenericUpstream({ ignoreIdempotencyKey: true, triggerDelayMs: 250 })
    cluster = await startCluster(PROCESSES, { RUNRELAY_LEASE_TTL_MS: String(TTL_MS) })
    tenant = await clusterTenant(cluster)
    workflowId = await countedWorkflow(tenant.client(0), upstream.url, { first_interval_ms: 100, max_interval_ms: 250, max_transient_errors: 50 })
  }, 300_000)
  afterAll(async () => {
    printClusterLogs(cluster)
    await cluster?.close()
    await upstream?.close()
  })

  it('0 double triggers; unknown outcomes end failed with trigger_outcome_unknown and their evidence; every run finishes gapless', async () => {
    const started = Date.now()
    const rounds: Array<{ killed: number; after_ms: number; restart_ms: number }> = []
    const ids: string[] = []
    for (let r = 0; r < ROUNDS; r++) {
      // Spread the runs over the live processes; a create that fails (its process just died) goes to the next one.
      const live = Array.from({ length: PROCESSES }, (_, i) => i).filter((i) => cluster.up(i))
      for (let i = 0; i < RUNS; i += 25) {
        ids.push(...await Promise.all(Array.from({ length: Math.min(25, RUNS - i) }, async (_, j) => {
          const n = i + j
          for (let k = 0; ; k++) {
            const p = live[(n + k) % live.length]!
            const res = await tenant.client(p).post(`/v1/workflows/${workflowId}/runs`, { variables: { script } }, { 'idempotency-key': `r${r}-${n}` }).catch(() => null)
            if (res?.status === 202) return res.body.id as string
            if (k > 5) throw new Error(`create failed: ${res?.status} ${JSON.stringify(res?.body)}`)
            await sleep(100)
          }
        })))
      }
      const wait = Math.floor(Math.random() * 400)
      await sleep(wait)
      const victim = Math.floor(Math.random() * PROCESSES)
      await cluster.stop(victim, 'SIGKILL')
      const t0 = Date.now()
      await cluster.start(victim)
      rounds.push({ killed: victim, after_ms: wait, restart_ms: Date.now() - t0 })
    }
    const c = tenant.client(0)
    await until(async () => (await allRuns(c)).every((x) => x.finished_at), 120_000, 'every run to finish')
    const runs = await allRuns(c)
    expect(runs.length).toBe(ROUNDS * RUNS)
    let completed = 0
    let unknown = 0
    let unknownWithJob = 0
    let events = 0
    const doubles: string[] = []
    for (const run of runs) {
      const jobs = upstream.jobsByRun.get(run.id) ?? 0
      if (jobs > 1) doubles.push(run.id)
      if (run.status === 'completed') {
        completed++
        expect(jobs, run.id).toBe(1)
      } else {
        expect(run.status, JSON.stringify(run.error)).toBe('failed')
        expect(run.error.code, JSON.stringify(run.error)).toBe('trigger_outcome_unknown')
        expect(run.error.body).toMatchObject({ attempt: 1, idempotency_key: run.id })
        expect(typeof run.error.body.sent_at).toBe('string')
        unknown++
        if (jobs === 1) unknownWithJob++
      }
      const h = (await c.get(`/v1/runs/${run.id}/events?limit=1000`)).body.events as Array<{ seq: number; type: string }>
      expect(h.map((e) => e.seq), run.id).toEqual(h.map((_, i) => i + 1))
      expect(h.filter((e) => e.type === 'run.created').length).toBe(1)
      events += h.length
    }
    expect(doubles, 'runs that started two jobs upstream').toEqual([])
    const figures = {
      processes: PROCESSES, rounds: ROUNDS, runs: runs.length, lease_ttl_ms: TTL_MS, kills: rounds,
      trigger_requests: upstream.triggerRequests, jobs_created: upstream.jobsCreated, double_triggers: doubles.length,
      completed, trigger_outcome_unknown: unknown, unknown_with_job_upstream: unknownWithJob, events_checked: events,
      total_ms: Date.now() - started,
    }
    logFigures('multiprocess triggers', figures)
    recordFigures(SOAK ? 'multiprocess-soak' : 'multiprocess-triggers', figures)
  }, SOAK ? 900_000 : 240_000)
})
