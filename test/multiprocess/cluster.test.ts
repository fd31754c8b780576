/**
 * Claims that must hold across processes, on 3 real servers sharing one database file:
 * commands on a process that does not watch the run, takeover after SIGKILL within the lease
 * TTL, SIGTERM handing runs over at once, upstream requests per run the same with 3
 * processes as with 1, schedules firing once, webhooks delivered once per event and endpoint.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { genericWorkflowConfig, startGenericUpstream, type GenericUpstream, type Step } from '../fakes/generic-upstream.ts'
import { allRuns, clusterTenant, countedWorkflow, printClusterLogs, startCluster, type Cluster } from '../helpers/cluster.ts'
import { until } from '../helpers/server.ts'
import { recordFigures } from '../reliability/figures.ts'

const PROCESSES = 3
const TTL_MS = 3_000
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const running = (n: number): Step[] => [...Array.from({ length: n }, (_, i) => ({ status: 'running', progress: (i + 1) / (n + 1) })), { status: 'completed', result: { done: true } }]

describe('multiprocess: ownership and claims on 3 processes', () => {
  let cluster: Cluster
  let upstream: GenericUpstream
  let tenant: Awaited<ReturnType<typeof clusterTenant>>
  let workflowId: string
  const figures: Record<string, unknown> = {}

  /** Create `n` runs, run i through process procs[i % procs.length]; their ids. */
  const create = async (n: number, procs: number[], script: Step[]) => Promise.all(Array.from({ length: n }, async (_, i) => {
    const res = await tenant.client(procs[i % procs.length]!).post(`/v1/workflows/${workflowId}/runs`, { variables: { script } })
    expect(res.status, JSON.stringify(res.body)).toBe(202)
    return res.body.id as string
  }))
  const jobOf = (runId: string) => [...upstream.jobs.values()].find((j) => j.run === runId)
  const finished = async (ids: string[]) => {
    const set = new Set(ids)
    await until(async () => (await allRuns(tenant.client(0))).filter((r) => set.has(r.id)).every((r) => r.finished_at), 60_000, 'runs to finish')
  }

  beforeAll(async () => {
    upstream = await startGenericUpstream({ ignoreIdempotencyKey: true })
    cluster = await startCluster(PROCESSES, { RUNRELAY_LEASE_TTL_MS: String(TTL_MS), RUNRELAY_JOBS_INTERVAL_MS: '200' })
    tenant = await clusterTenant(cluster)
    workflowId = await countedWorkflow(tenant.client(0), upstream.url, { first_interval_ms: 100, max_interval_ms: 200 })
  }, 300_000)
  afterAll(async () => {
    printClusterLogs(cluster)
    await cluster?.close()
    await upstream?.close()
    recordFigures('multiprocess-claims', figures)
  })

  it('a command sent to a process that does not watch the run works; the owner stops polling the canceled job', async () => {
    const [id] = await create(1, [0], running(400))
    await until(() => (jobOf(id!)?.polls ?? 0) >= 2, 10_000, 'the owner polling')
    const res = await tenant.client(1).post(`/v1/runs/${id}/cancel`)
    expect(res.status, JSON.stringify(res.body)).toBe(200)
    expect(res.body.status).toBe('canceled')
    const job = jobOf(id!)!
    expect(job.canceled).toBe(true)
    await sleep(600)
    const polls = job.polls
    await sleep(1_000)
    expect(job.polls, 'no process polls a canceled run').toBe(polls)
    const h = (await tenant.client(2).get(`/v1/runs/${id}/events`)).body.events as Array<{ seq: number; type: string }>
    expect(h.map((e) => e.seq)).toEqual(h.map((_, i) => i + 1))
    // One terminal event: written by this cancel, or by the owner if its poll saw the upstream job canceled first.
    expect(h.filter((e) => e.type === 'run.status_changed' && (e as { status?: string }).status === 'canceled').length).toBe(1)
    expect(h.filter((e) => e.type === 'run.command').length).toBeLessThanOrEqual(1)
  })

  it('upstream requests per run: the same with 3 processes as with 1', async () => {
    const measure = async (procs: number[]) => {
      const before = upstream.requests
      const ids = await create(60, procs, running(5))
      await finished(ids)
      return (upstream.requests - before) / ids.length
    }
    await cluster.stop(1, 'SIGTERM')
    await cluster.stop(2, 'SIGTERM')
    const one = await measure([0])
    await cluster.start(1)
    await cluster.start(2)
    const three = await measure([0, 1, 2])
    figures.requests_per_run = { one_process: one, three_processes: three, ratio: three / one }
    // A trigger and six polls: every extra request would be a second watcher.
    expect(one).toBe(7)
    expect(three).toBe(7)
  }, 120_000)

  it(`SIGKILL: another process takes the runs over within the lease TTL (${TTL_MS} ms)`, async () => {
    const ids = await create(30, [0], running(400))
    await until(() => ids.every((id) => (jobOf(id)?.polls ?? 0) >= 1), 20_000, 'all polled')
    const t0 = Date.now()
    await cluster.stop(0, 'SIGKILL')
    const resumedAt = await until(() => {
      const firsts = ids.map((id) => jobOf(id)!.pollTimes.find((t) => t > t0 + 50))
      return firsts.every((t) => t !== undefined) ? Math.max(...(firsts as number[])) : undefined
    }, TTL_MS * 4, 'polls resumed elsewhere')
    const takeoverMs = resumedAt - t0
    figures.takeover_after_sigkill_ms = { ttl_ms: TTL_MS, runs: ids.length, all_polled_again_after_ms: takeoverMs }
    // TTL, one claim pass (TTL/4), one poll interval, and slack for a loaded machine.
    expect(takeoverMs).toBeLessThan(TTL_MS + 2_500)
    await cluster.start(0)
    for (const id of ids) await tenant.client(0).post(`/v1/runs/${id}/cancel`)
  }, 90_000)

  it('SIGTERM hands the runs over at once (before the lease would lapse)', async () => {
    const ids = await create(30, [1], running(400))
    await until(() => ids.every((id) => (jobOf(id)?.polls ?? 0) >= 1), 20_000, 'all polled')
    const t0 = Date.now()
    const code = await cluster.stop(1, 'SIGTERM')
    expect(code).toBe(0)
    const stoppedMs = Date.now() - t0
    const resumedAt = await until(() => {
      const firsts = ids.map((id) => jobOf(id)!.pollTimes.find((t) => t > t0 + stoppedMs))
      return firsts.every((t) => t !== undefined) ? Math.max(...(firsts as number[])) : undefined
    }, TTL_MS * 4, 'polls resumed elsewhere')
    figures.sigterm_handover_ms = { runs: ids.length, shutdown_ms: stoppedMs, all_polled_again_after_ms: resumedAt - t0 }
    expect(resumedAt - t0 - stoppedMs).toBeLessThan(TTL_MS)
    expect(cluster.output(1)).toMatch(/"msg":"leases released".*"runs":\d+/)
    await cluster.start(1)
    for (const id of ids) await tenant.client(1).post(`/v1/runs/${id}/cancel`)
  }, 90_000)

  it('schedules fire once, whichever process sees them due', async () => {
    const at = new Date(Date.now() + 4_000).toISOString().slice(0, 19)
    const made = await Promise.all(Array.from({ length: 12 }, async (_, i) => {
      const res = await tenant.client(i % PROCESSES).post('/v1/schedules', { workflow_id: workflowId, at, timezone: 'UTC', variables: { script: running(1) } })
      expect(res.status, JSON.stringify(res.body)).toBe(201)
      return res.body.id as string
    }))
    await until(async () => {
      const runs = (await allRuns(tenant.client(0))).filter((r) => made.includes(r.schedule_id ?? '') || made.some((s) => r.tags?.includes?.(s)))
      return runs.length >= made.length && runs.every((r) => r.finished_at) ? runs : undefined
    }, 40_000, 'scheduled runs finished').catch(() => undefined)
    const scheduled = await Promise.all(made.map(async (id) => (await tenant.client(0).get(`/v1/schedules/${id}`)).body))
    for (const s of scheduled) expect(s.fires, JSON.stringify(s)).toBe(1)
    const runIds = scheduled.map((s) => s.last_run_id as string)
    expect(new Set(runIds).size).toBe(made.length)
    await finished(runIds)
    for (const id of runIds) expect(upstream.jobsByRun.get(id)).toBe(1)
    figures.schedules = { schedules: made.length, fires: scheduled.reduce((n, s) => n + s.fires, 0), jobs: runIds.reduce((n, id) => n + (upstream.jobsByRun.get(id) ?? 0), 0) }
  }, 90_000)

  it('a connection\'s request budget holds for all processes together, not per process', async () => {
    const limited = await startGenericUpstream({ ignoreIdempotencyKey: true })
    try {
      const c = tenant.client(0)
      const conn = await c.post('/v1/connections', { name: 'limited', provider: 'http', base_url: limited.url, rate_limit_per_second: 5 })
      expect(conn.status, JSON.stringify(conn.body)).toBe(201)
      const wf = await c.post('/v1/workflows', {
        name: 'limited', connection_id: conn.body.id, upstream_workflow_id: 'jobs', input_template: { script: '{{script}}' },
        config: genericWorkflowConfig, poll_policy: { first_interval_ms: 100, max_interval_ms: 200 },
      })
      const ids = await Promise.all(Array.from({ length: 24 }, async (_, i) => (await tenant.client(i % PROCESSES).post(`/v1/workflows/${wf.body.id}/runs`, { variables: { script: running(3) } })).body.id as string))
      await finished(ids)
      const times = limited.requestTimes
      // Most requests in any one-second window: the bucket's capacity (5) plus a second's refill (5).
      let most = 0
      for (let i = 0, j = 0; i < times.length; i++) {
        while (times[i]! - times[j]! >= 1_000) j++
        most = Math.max(most, i - j + 1)
      }
      const rate = (times.length - 1) / ((times.at(-1)! - times[0]!) / 1000)
      figures.shared_rate_budget = { limit_per_second: 5, processes: PROCESSES, requests: times.length, mean_per_second: Number(rate.toFixed(2)), most_in_one_second: most }
      expect(rate).toBeLessThan(5.5)
      expect(most).toBeLessThanOrEqual(10)
    } finally {
      await limited.close()
    }
  }, 120_000)

  it('webhooks: each event delivered once per endpoint, whichever process watched the run', async () => {
    const got: string[] = []
    const server: Server = createServer((req, res) => {
      req.resume()
      req.on('end', () => { got.push(String(req.headers['webhook-id'])); res.end('ok') })
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`
      const ep = await tenant.client(0).post('/v1/webhooks', { url, workflow_id: workflowId, events: 'all' })
      expect(ep.status, JSON.stringify(ep.body)).toBe(201)
      const ids = await create(30, [0, 1, 2], running(2))
      await finished(ids)
      const events = (await Promise.all(ids.map(async (id) => (await tenant.client(0).get(`/v1/runs/${id}/events`)).body.events as unknown[]))).flat()
      await until(() => new Set(got).size >= events.length, 30_000, 'every event delivered')
      await sleep(1_000)
      figures.webhooks = { events: events.length, deliveries: got.length, distinct: new Set(got).size }
      expect(new Set(got).size).toBe(events.length)
      expect(got.length, 'no event delivered twice').toBe(events.length)
    } finally {
      server.close()
    }
  }, 90_000)
})
