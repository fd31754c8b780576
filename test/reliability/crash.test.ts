/**
 * Crash and graceful shutdown of the Node process, with the fake upstream in this test
 * process (outside the killed server): 200 runs in flight, SIGKILL at random moments over
 * several rounds, restart; then SIGTERM under load with subscribers listening.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createClient } from '@libsql/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { genericWorkflowConfig, startGenericUpstream, type GenericUpstream, type Step } from '../fakes/generic-upstream.ts'
import { startChildServer, type ChildServer } from '../helpers/child.ts'
import { allRuns as allRunsOf } from '../helpers/cluster.ts'
import { api, until } from '../helpers/server.ts'
import { recordFigures } from './figures.ts'
import { checkHistory, resilientSubscriber, sumChecks, type Ev } from './subscriber.ts'

const ROOT = 'rr_reliability_crash_root_0123456789'
const RUNS = 200
const ROUNDS = 4
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe('reliability: crash (SIGKILL) and graceful shutdown (SIGTERM)', () => {
  let dataDir: string
  let upstream: GenericUpstream
  let child: ChildServer | undefined
  let port: number
  let key: string
  let workflowId: string
  const figures: Record<string, unknown> = {}
  // A fixed instance name, as a deployment with a stable name has: the restarted process frees the
  // dead one's leases at once and resumes its runs at start (without it, after the lease TTL).
  const env = () => ({ RUNRELAY_INSTANCE_ID: 'crash-test-1', RUNRELAY_DATA_DIR: dataDir, RUNRELAY_ROOT_KEY: ROOT, RUNRELAY_ALLOW_PRIVATE_NETWORK: '1', RUNRELAY_HEARTBEAT_MS: '1000', RUNRELAY_LOG: 'info' })
  const client = () => api(child!.url, key)
  // Twelve polls "running" with rising progress, then completed: 1.5 to 3 s of polling per run.
  const script: Step[] = [...Array.from({ length: 12 }, (_, i) => ({ status: 'running', progress: (i + 1) / 13 })), { status: 'completed', result: { done: true } }]

  /** Runs the database holds as unfinished (read from the file while no server runs). */
  const storedUnfinished = async () => {
    const db = createClient({ url: `file:${join(dataDir, 'runrelay.db')}` })
    try { return Number((await db.execute('SELECT count(*) AS n FROM runs WHERE finished_at IS NULL')).rows[0]!.n) } finally { db.close() }
  }
  const restart = async () => {
    child = await startChildServer(env(), port)
    return Number(/"resumedRuns":(\d+)/.exec(child.output())?.[1] ?? -1)
  }
  const allRuns = () => allRunsOf(client())
  const history = async (id: string) => (await client().get(`/v1/runs/${id}/events?limit=1000`)).body.events as Ev[]
  const trigger = async (n: number, prefix: string, steps = script) => {
    const ids: string[] = []
    for (let i = 0; i < n; i += 20) {
      ids.push(...await Promise.all(Array.from({ length: Math.min(20, n - i) }, async (_, j) => {
        const res = await client().post(`/v1/workflows/${workflowId}/runs`, { variables: { script: steps } }, { 'idempotency-key': `${prefix}-${i + j}` })
        expect(res.status, JSON.stringify(res.body)).toBe(202)
        return res.body.id as string
      })))
    }
    return ids
  }
  const expectGaplessCompleted = async (ids: string[]) => {
    let events = 0
    for (const id of ids) {
      const h = await history(id)
      expect(h.map((e) => e.seq), id).toEqual(h.map((_, i) => i + 1))
      expect(h.filter((e) => e.type === 'run.created').length).toBe(1)
      expect(h.filter((e) => e.type === 'run.status_changed' && e.status === 'completed').length, id).toBe(1)
      expect(h.at(-1)!.status).toBe('completed')
      events += h.length
    }
    return events
  }

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'runrelay-crash-'))
    upstream = await startGenericUpstream()
    child = await startChildServer(env())
    port = Number(new URL(child.url).port)
    key = (await api(child.url, ROOT).post('/v1/tenants', { name: 'crash' })).body.key.key
    const conn = await client().post('/v1/connections', { name: 'fake', provider: 'http', base_url: upstream.url })
    const wf = await client().post('/v1/workflows', { name: 'slow', connection_id: conn.body.id, upstream_workflow_id: 'jobs', config: { ...genericWorkflowConfig, honoursIdempotencyKey: true }, input_template: { script: '{{script}}' }, poll_policy: { first_interval_ms: 100, max_interval_ms: 250 } })
    expect(wf.status).toBe(201)
    workflowId = wf.body.id
  }, 30_000)
  afterAll(async () => {
    child?.proc.kill('SIGKILL')
    await upstream?.close()
    rmSync(dataDir, { recursive: true, force: true })
    recordFigures('crash', figures)
  })

  it(`${RUNS} runs in flight, SIGKILL at random moments ${ROUNDS} times: every run finishes, none triggered twice, seq 1..n without gaps`, async () => {
    const started = Date.now()
    const ids = await trigger(RUNS, 'crash')
    const rounds: Array<{ killed_after_ms: number; unfinished_at_kill: number; stored_unfinished: number; resumed: number; restart_ms: number }> = []
    for (let r = 0; r < ROUNDS; r++) {
      const wait = 200 + Math.floor(Math.random() * 1200)
      await sleep(wait)
      const unfinished = (await allRuns()).filter((x) => !x.finished_at).length
      child!.proc.kill('SIGKILL')
      await child!.exited
      const stored = await storedUnfinished()
      const t0 = Date.now()
      const resumed = await restart()
      rounds.push({ killed_after_ms: wait, unfinished_at_kill: unfinished, stored_unfinished: stored, resumed, restart_ms: Date.now() - t0 })
      // What a user relies on after a crash: the restarted process takes up every run the dead one
      // left unfinished, at start (-1 would mean it did not report it).
      expect(resumed, `round ${r}: runs resumed at start vs unfinished in the database`).toBe(stored)
    }
    expect(rounds.some((r) => r.stored_unfinished > 0), 'at least one kill hit runs in flight').toBe(true)
    await until(async () => (await allRuns()).every((x) => x.finished_at), 60_000, 'every run to finish')
    const events = await expectGaplessCompleted(ids)
    // Exactly one upstream job per run: the workflow declares that this fake honours Idempotency-Key, so a trigger cut by
    // a kill is resent with the same key (an upstream that does not dedupe: test/multiprocess/).
    expect(upstream.jobsCreated).toBe(RUNS)
    figures.sigkill = {
      runs: RUNS, rounds, events_checked: events, seq_gaps: 0, jobs_created: upstream.jobsCreated,
      trigger_requests: upstream.triggerRequests, duplicate_triggers_answered_by_idempotency: upstream.triggerRequests - upstream.jobsCreated,
      total_ms: Date.now() - started,
    }
  }, 120_000)

  it('SIGTERM under load loses nothing: clients get 1012 and resume without loss; every run finishes gapless', async () => {
    const jobsBefore = upstream.jobsCreated
    // Longer runs (40 polls): still polling when the SIGTERM comes.
    const long: Step[] = [...Array.from({ length: 40 }, (_, i) => ({ status: 'running', progress: (i + 1) / 41 })), { status: 'completed', result: { done: true } }]
    const t = Date.now()
    const ids = await trigger(100, 'term', long)
    const triggerMs = Date.now() - t
    const wsBase = child!.url.replace(/^http/, 'ws')
    const runSubs = ids.slice(0, 40).map((id) => resilientSubscriber({ url: `${wsBase}/v1/runs/${id}/stream`, key, kind: 'run', reconnectMs: 200 }))
    const feedSubs = Array.from({ length: 10 }, () => resilientSubscriber({ url: `${wsBase}/v1/stream`, key, kind: 'feed', after: 0, reconnectMs: 200 }))
    await until(() => [...runSubs, ...feedSubs].every((s) => s.connected || s.finished), 30_000, 'subscribers connected').catch((e) => {
      console.log([...runSubs, ...feedSubs].filter((s) => !s.connected && !s.finished).map((s) => ({ c: s.connects, closes: s.closes.slice(0, 5), n: s.received.length })).slice(0, 5))
      throw e
    })
    const connectedAtSigterm = [...runSubs, ...feedSubs].filter((s) => s.connected)
    const connectMs = Date.now() - t - triggerMs
    await sleep(300 + Math.floor(Math.random() * 700))
    const unfinished = (await allRuns()).filter((x) => !x.finished_at).length
    const t0 = Date.now()
    child!.proc.kill('SIGTERM')
    expect(await child!.exited).toBe(0)
    const shutdownMs = Date.now() - t0
    const stored = await storedUnfinished()
    const resumed = await restart()
    expect(resumed, 'runs resumed at start vs unfinished in the database').toBe(stored)
    try {
      await until(async () => (await allRuns()).every((x) => x.finished_at), 60_000, 'every run to finish')
      await Promise.all(runSubs.map((s) => s.done))
      // The feed's stored history (every event of the tenant, in id order) is what each feed subscriber must have seen.
      const all = (await Promise.all((await allRuns()).map((r) => history(r.id)))).flat().sort((a, b) => a.id - b.id)
      const maxId = all.at(-1)!.id
      await until(() => feedSubs.every((s) => s.last >= maxId), 20_000, 'feed subscribers caught up')
      const checks = [
        ...await Promise.all(runSubs.map(async (s, i) => checkHistory(await history(ids[i]!), s.received, (e) => e.seq))),
        ...feedSubs.map((s) => checkHistory(all, s.received, (e) => e.id)),
      ]
      const total = sumChecks(checks)
      expect(total).toMatchObject({ lost: 0, duplicated: 0, reordered: 0 })
      // A run that ended before the SIGTERM closed its streams with 1000 already; every other connected stream got the 1012.
      const endedBefore = new Set((await allRuns()).filter((r) => r.finished_at && Date.parse(r.finished_at) <= t0).map((r) => r.id))
      for (const s of connectedAtSigterm) {
        const i = runSubs.indexOf(s)
        if (i >= 0 && endedBefore.has(ids[i]!)) continue
        expect(s.closes, 'every connected subscriber saw the 1012').toContain(1012)
      }
      await expectGaplessCompleted(ids)
      expect(upstream.jobsCreated - jobsBefore).toBe(100)
      figures.sigterm = {
        runs: 100, trigger_ms: triggerMs, subscribe_ms: connectMs, unfinished_at_sigterm: unfinished, resumed_after_restart: resumed, shutdown_ms: shutdownMs,
        subscribers: runSubs.length + feedSubs.length, connected_at_sigterm: connectedAtSigterm.length, got_1012: [...runSubs, ...feedSubs].filter((s) => s.closes.includes(1012)).length,
        ...total,
      }
    } finally {
      for (const s of [...runSubs, ...feedSubs]) s.stop()
    }
  }, 120_000)
})
