/**
 * Database faults under 3 real processes sharing one libSQL server over the network, as the
 * README's "Running more than one process" deploys them: the project's Hrana server
 * (scripts/libsql-http-server.ts, a child process) over HTTP behind a fault-injecting TCP
 * proxy, a Redis bus when redis-server is installed (required when CI=true), a counting
 * upstream that ignores Idempotency-Key, RUNRELAY_LEASE_TTL_MS=3000.
 *
 * Faults, one after another, runs in flight through each: a stall longer than the TTL
 * (SIGSTOP of the server), a stall of about one TTL, a restart (SIGKILL + start), a network
 * cut (every connection reset, new ones refused). During each: the API answers 503
 * store_unavailable with Retry-After and /healthz says db down; a feed subscriber on each
 * process stays connected and gets every event once, in order. After all: every run
 * finishes, runs created after each fault complete, 0 double triggers upstream, 0
 * trigger_outcome_unknown from a fault shorter than the TTL, and a trigger retried with its
 * Idempotency-Key (at once, and past the in-flight window) answers its one run.
 *
 * `npm test`: one round of each fault. `npm run test:soak` (RUNRELAY_SOAK=1): 3 rounds, more runs.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startGenericUpstream, type GenericUpstream, type Step } from '../fakes/generic-upstream.ts'
import { allRuns, clusterTenant, countedWorkflow, printClusterLogs, startCluster, type Cluster } from '../helpers/cluster.ts'
import { startLibsqlServer, type LibsqlServerProcess } from '../helpers/libsql-server.ts'
import { haveRedis, startRedis, type RedisServer } from '../helpers/redis.ts'
import { openWs } from '../helpers/clients.ts'
import { api, until } from '../helpers/server.ts'
import { startTcpProxy } from '../helpers/tcp-proxy.ts'

const SOAK = process.env.RUNRELAY_SOAK === '1'
const ROUNDS = SOAK ? 3 : 1
const RUNS = SOAK ? 40 : 12
const PROCESSES = 3
const TTL_MS = 3_000
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

type Fault = 'stall_over_ttl' | 'stall_about_ttl' | 'restart' | 'cut'

describe(`multiprocess: database stalls, restarts and network cuts (${ROUNDS} round(s), ${PROCESSES} processes, Hrana over HTTP)`, () => {
  let dir: string
  let db: LibsqlServerProcess
  let proxy: Awaited<ReturnType<typeof startTcpProxy>>
  let redis: RedisServer | undefined
  let cluster: Cluster
  let upstream: GenericUpstream
  let tenant: Awaited<ReturnType<typeof clusterTenant>>
  let workflowId: string
  // Four polls "running", then completed.
  const script: Step[] = [...Array.from({ length: 4 }, (_, i) => ({ status: 'running', progress: (i + 1) / 5 })), { status: 'completed', result: { done: true } }]

  beforeAll(async () => {
    if (process.env.CI === 'true' && !haveRedis()) throw new Error('redis-server is required when CI=true (apt-get install -y redis-server)')
    dir = mkdtempSync(join(tmpdir(), 'runrelay-dbfaults-'))
    db = await startLibsqlServer(join(dir, 'shared.db'))
    proxy = await startTcpProxy(db.port)
    redis = haveRedis() ? await startRedis() : undefined
    upstream = await startGenericUpstream({ ignoreIdempotencyKey: true, triggerDelayMs: 100 })
    cluster = await startCluster(PROCESSES, {
      LIBSQL_URL: proxy.url, RUNRELAY_LEASE_TTL_MS: String(TTL_MS), RUNRELAY_STORE_TIMEOUT_MS: '1000',
      RUNRELAY_ENCRYPTION_KEY: 'mZ3c0mXbqK1mS8d9V4n2Qe7tYw6uHj5kLp0oIa3sDfg=', RUNRELAY_RATE_LIMIT_PER_MINUTE: '0',
      ...(redis ? { RUNRELAY_BUS_URL: redis.url } : {}),
    })
    tenant = await clusterTenant(cluster)
    workflowId = await countedWorkflow(tenant.client(0), upstream.url, { first_interval_ms: 150, max_interval_ms: 300, max_transient_errors: 50 })
  }, 300_000)
  afterAll(async () => {
    printClusterLogs(cluster)
    await cluster?.close()
    await upstream?.close()
    await redis?.stop()
    await proxy?.stop()
    await db?.stop()
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  /** Create `n` runs spread over the processes, retrying each with its Idempotency-Key until a 202. */
  const createRuns = async (tag: string, n: number): Promise<string[]> => Promise.all(Array.from({ length: n }, async (_, i) => {
    for (let k = 0; ; k++) {
      const res = await tenant.client((i + k) % PROCESSES).post(`/v1/workflows/${workflowId}/runs`, { variables: { script } }, { 'idempotency-key': `${tag}-${i}` }).catch(() => null)
      if (res?.status === 202) return res.body.id as string
      if (k > 100) throw new Error(`create ${tag}-${i} failed: ${res?.status} ${JSON.stringify(res?.body)}`)
      await sleep(200)
    }
  }))

  it('every run finishes, runs after each fault complete, 0 double triggers, 503 + Retry-After during the fault, one run per Idempotency-Key', async () => {
    // A feed subscriber on every process, through every fault: it stays connected and gets every event once, in order.
    const feeds = Array.from({ length: PROCESSES }, (_, i) => openWs(`${cluster.url(i).replace('http', 'ws')}/v1/stream?after=0`, { authorization: `Bearer ${tenant.key}` }))
    await Promise.all(feeds.map((f) => f.opened))
    const phases: Array<{ fault: Fault; round: number; during: string[]; after: string[]; status503: number; retryAfter: boolean; healthDown: boolean; faultMs: number }> = []
    const all: string[] = []
    for (let round = 0; round < ROUNDS; round++) {
      for (const fault of ['stall_over_ttl', 'stall_about_ttl', 'restart', 'cut'] as Fault[]) {
        const during = await createRuns(`${fault}-${round}-in`, RUNS)
        await sleep(150) // triggers on the wire, polls under way
        const t0 = Date.now()
        if (fault === 'stall_over_ttl' || fault === 'stall_about_ttl') db.stall()
        else if (fault === 'restart') await db.stop()
        else proxy.cut()
        // While it lasts: the API says 503 store_unavailable with Retry-After; /healthz says db down.
        const probe = await tenant.client(round % PROCESSES).post(`/v1/workflows/${workflowId}/runs`, { variables: { script } }, { 'idempotency-key': `${fault}-${round}-probe` }).catch(() => null)
        const health = await api(cluster.url(1)).get('/healthz').catch(() => null)
        const holdMs = fault === 'stall_over_ttl' ? 2.5 * TTL_MS : fault === 'stall_about_ttl' ? TTL_MS : fault === 'cut' ? 5_000 : 0
        await sleep(Math.max(0, holdMs - (Date.now() - t0)))
        if (fault === 'restart') await db.restart()
        else if (fault === 'cut') proxy.restore()
        else db.resume()
        const faultMs = Date.now() - t0
        // The probe's retry with the same key: its one run (created now, or found if the 503 had committed it).
        const retried = await createRuns(`${fault}-${round}-probe`, 1)
        const again = await createRuns(`${fault}-${round}-probe`, 1)
        expect(again, 'a retry with the same key answers the same run').toEqual(retried)
        const after = await createRuns(`${fault}-${round}-after`, 5)
        phases.push({ fault, round, during, after: [...after, ...retried], status503: probe?.status ?? 0, retryAfter: !!probe?.headers.get('retry-after'), healthDown: health?.status === 503 && health.body?.db === 'down', faultMs })
        all.push(...during, ...after, ...retried)
        expect(probe?.status, `${fault}: the API answers 503 during the fault (${JSON.stringify(probe?.body)})`).toBe(503)
        expect(probe?.body?.error?.code).toBe('store_unavailable')
        expect(probe?.headers.get('retry-after')).toBeTruthy()
        expect(health?.status, `${fault}: /healthz reports the database down`).toBe(503)
        expect(health?.body?.db).toBe('down')
      }
    }
    const c = tenant.client(0)
    const unique = [...new Set(all)]
    expect(unique.length, 'one run per Idempotency-Key').toBe(all.length)
    await until(async () => {
      const runs = await allRuns(c).catch(() => [])
      return unique.every((id) => runs.find((r) => r.id === id)?.finished_at)
    }, 90_000, 'every run to finish')
    const runs = new Map((await allRuns(c)).map((r) => [r.id, r]))
    const doubles = unique.filter((id) => (upstream.jobsByRun.get(id) ?? 0) > 1)
    expect(doubles, 'runs with two upstream jobs').toEqual([])
    const figures = phases.map((p) => {
      const ended = (ids: string[]) => ids.map((id) => runs.get(id)!)
      const unknown = ended(p.during).filter((r) => r.error?.code === 'trigger_outcome_unknown').length
      return {
        fault: p.fault, round: p.round, fault_ms: p.faultMs, in_flight: p.during.length,
        completed: ended(p.during).filter((r) => r.status === 'completed').length, unknown,
        after_completed: `${ended(p.after).filter((r) => r.status === 'completed').length}/${p.after.length}`,
      }
    })
    console.log(JSON.stringify({ db_faults: figures, store_errors: await storeErrors() }))
    for (const p of phases) {
      // Runs created after a fault complete, whatever it was.
      for (const id of p.after) expect(runs.get(id)?.status, `${p.fault}: run ${id} created after the fault (${JSON.stringify(runs.get(id)?.error)})`).toBe('completed')
      for (const id of p.during) {
        const r = runs.get(id)!
        // In flight through the fault: completed, or (a fault longer than the TTL only) failed with a true unknown outcome.
        if (r.status === 'completed') continue
        expect(p.fault === 'stall_over_ttl' || p.fault === 'cut', `${p.fault}: run ${id} ended ${r.status} ${JSON.stringify(r.error)}`).toBe(true)
        expect(r.error?.code).toBe('trigger_outcome_unknown')
      }
    }
    expect(await storeErrors(), '/metrics counts store errors').toBeGreaterThan(0)
    // Every feed: still open, and exactly the stored history of every run, in id order.
    const history: Array<{ id: number }> = []
    for (const id of unique) history.push(...(await c.get(`/v1/runs/${id}/events?limit=1000`)).body.events)
    const expected = history.map((e) => e.id).sort((a, b) => a - b)
    for (const [i, feed] of feeds.entries()) {
      await until(() => feed.events.length >= expected.length, 30_000, `feed on process ${i} to catch up`).catch(() => {})
      expect(feed.closeInfo, `feed on process ${i} stays connected`).toBeNull()
      expect(feed.events.map((e) => e.id), `feed on process ${i}: every event once, in order`).toEqual(expected)
      feed.close()
    }
  }, SOAK ? 900_000 : 240_000)

  /** runrelay_store_errors_total summed over the processes. */
  const storeErrors = async (): Promise<number> => {
    let sum = 0
    for (let i = 0; i < PROCESSES; i++) {
      const res = await api(cluster.url(i), cluster.rootKey).get('/metrics')
      for (const line of String(res.body).split('\n')) if (line.startsWith('runrelay_store_errors_total{')) sum += Number(line.split(' ').at(-1))
    }
    return sum
  }
})
