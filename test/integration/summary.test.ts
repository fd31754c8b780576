import { and, eq, sql } from 'drizzle-orm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { newId } from '../../src/core/crypto.ts'
import type { RunStatus } from '../../src/core/domain.ts'
import { events, runs } from '../../src/db/schema.ts'
import type { Store } from '../../src/db/store.ts'
import { seedWorkflow, tempDatabase } from '../helpers/jobs.ts'
import { demoTenant } from '../helpers/live.ts'
import { startTestServer, type TestServer } from '../helpers/server.ts'
import { rawDb } from '../helpers/store.ts'

const HOUR = 3_600_000
const STATUSES = ['completed', 'completed', 'completed', 'failed', 'canceled', 'timed_out', 'running', 'queued'] as const

/** Deterministic pseudo-random numbers (a test that fails can be replayed). */
function rng(seed: number) {
  return () => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31)
}

type Row = typeof runs.$inferInsert
function makeRun(tenantId: string, workflowId: string, createdAt: number, status: RunStatus, durationMs: number | null): Row {
  const finished = !['running', 'queued', 'scheduled'].includes(status)
  const startedAt = status === 'queued' ? null : createdAt + 100
  return {
    id: newId('run'), tenantId, workflowId, status, variables: {}, runtimeVariables: {}, tags: [], connectorState: {}, outputKeys: [], lastSeq: 1,
    // Leased to no process of this test (far future): the server's claim loop leaves these rows alone.
    leaseOwner: 'elsewhere', leaseExpiresAt: Date.now() + 3_600_000,
    transientErrors: 0, polls: 0, createdAt, updatedAt: createdAt, startedAt, finishedAt: finished && startedAt !== null && durationMs !== null ? startedAt + durationMs : finished ? createdAt : null,
  }
}

/** Insert runs straight through the Store's database, 500 a statement. */
async function insertRuns(store: Store, rows: Row[]) {
  for (let i = 0; i < rows.length; i += 500) await rawDb(store).insert(runs).values(rows.slice(i, i + 500))
}

const nearestRank = (sorted: number[], p: number) => sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)]!

describe('GET /v1/workflows/{id}/summary', () => {
  let server: TestServer
  let t: Awaited<ReturnType<typeof demoTenant>>
  let wf: string
  let other: string
  const rows: Row[] = []
  const base = Date.parse('2026-10-01T00:00:00Z')
  beforeAll(async () => {
    server = await startTestServer()
    t = await demoTenant(server)
    wf = await t.workflow('busy')
    other = await t.workflow('other')
    const rand = rng(42)
    for (let i = 0; i < 20_000; i++) {
      const status = STATUSES[Math.floor(rand() * STATUSES.length)]!
      rows.push(makeRun(t.tenantId, wf, base + Math.floor(rand() * 72 * HOUR), status, Math.floor(rand() * 60_000)))
    }
    // Noise: another workflow, and runs outside the window.
    for (let i = 0; i < 500; i++) rows.push(makeRun(t.tenantId, other, base + i * 1000, 'completed', 5))
    await insertRuns(server.runtime.store, rows)
  }, 60_000)
  afterAll(async () => { await server?.stop() })

  it('matches counts, success rate, percentiles and the hourly timeline computed here', async () => {
    const from = base + 6 * HOUR, to = base + 54 * HOUR
    const res = await t.client.get(`/v1/workflows/${wf}/summary?from=${new Date(from).toISOString()}&to=${new Date(to).toISOString()}&bucket=hour`)
    expect(res.status).toBe(200)
    const mine = rows.filter((r) => r.workflowId === wf && r.createdAt >= from && r.createdAt < to)
    const counts: Record<string, number> = {}
    for (const r of mine) counts[r.status] = (counts[r.status] ?? 0) + 1
    const finished = ['completed', 'failed', 'canceled', 'timed_out'].reduce((n, s) => n + (counts[s] ?? 0), 0)
    const durations = mine.filter((r) => r.startedAt != null && r.finishedAt != null).map((r) => r.finishedAt! - r.startedAt!).sort((a, b) => a - b)
    expect(res.body.total).toBe(mine.length)
    expect(res.body.counts).toEqual(counts)
    expect(res.body.finished).toBe(finished)
    expect(res.body.success_rate).toBeCloseTo((counts.completed ?? 0) / finished, 10)
    expect(res.body.duration_ms).toMatchObject({ count: durations.length, p50: nearestRank(durations, 0.5), p95: nearestRank(durations, 0.95), max: durations.at(-1) })
    const timeline = new Map<number, number>()
    for (const r of mine) timeline.set(Math.floor(r.createdAt / HOUR) * HOUR, (timeline.get(Math.floor(r.createdAt / HOUR) * HOUR) ?? 0) + 1)
    expect(res.body.timeline).toHaveLength(48)
    for (const b of res.body.timeline) expect(b.total).toBe(timeline.get(Date.parse(b.start)))
    const completedPerBucket = res.body.timeline.reduce((n: number, b: any) => n + b.completed, 0)
    expect(completedPerBucket).toBe(counts.completed)
  })

  it('buckets by day and answers an empty window with zeros', async () => {
    const res = await t.client.get(`/v1/workflows/${wf}/summary?from=${new Date(base).toISOString()}&to=${new Date(base + 3 * 24 * HOUR).toISOString()}&bucket=day`)
    expect(res.body.timeline.map((b: any) => b.total)).toEqual([0, 1, 2].map((d) => rows.filter((r) => r.workflowId === wf && r.createdAt >= base + d * 24 * HOUR && r.createdAt < base + (d + 1) * 24 * HOUR).length))
    const empty = await t.client.get(`/v1/workflows/${wf}/summary?from=2020-01-01T00:00:00Z&to=2020-01-02T00:00:00Z`)
    expect(empty.body).toMatchObject({ total: 0, counts: {}, success_rate: null, duration_ms: { count: 0, p50: null, p95: null }, timeline: [] })
  })

  it('refuses bad windows and other tenants\' workflows', async () => {
    expect((await t.client.get(`/v1/workflows/${wf}/summary?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z`)).status).toBe(400)
    expect((await t.client.get(`/v1/workflows/${wf}/summary?from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z&bucket=hour`)).status).toBe(400)
    const stranger = await demoTenant(server, 'stranger')
    expect((await stranger.client.get(`/v1/workflows/${wf}/summary`)).status).toBe(404)
  })

  it('reads only the covering index (no table access) for its queries', async () => {
    const plan = await rawDb(server.runtime.store).all<{ detail: string }>(sql`explain query plan select status, count(*) from runs where workflow_id = ${wf} and created_at >= 0 and created_at < 1e15 group by status`)
    expect(plan.map((p) => p.detail).join(' ')).toMatch(/COVERING INDEX runs_workflow_summary/)
  })
})

describe('retention', () => {
  it('prunes finished runs and their events older than the tenant\'s retention, in batches, keeping unfinished ones', async () => {
    const db = await tempDatabase()
    try {
      const now = Date.parse('2027-03-01T00:00:00Z')
      const { tenant, workflow } = await seedWorkflow(db.store, now, { retentionDays: 7 })
      const keeper = await seedWorkflow(db.store, now) // no retention: nothing of it goes
      const mk = async (tenantId: string, workflowId: string, ageDays: number, finished: boolean) => {
        const row = makeRun(tenantId, workflowId, now - ageDays * 86_400_000, finished ? 'completed' : 'running', 1000)
        const { run } = await db.store.runs.create(row, { type: 'run.created', data: {} })
        await db.store.runs.applyChange(run, {}, [{ type: 'run.progress', data: { p: 1 } }, { type: 'run.output', data: { o: 1 } }], row.createdAt)
        return run.id
      }
      const old = await Promise.all(Array.from({ length: 10 }, () => mk(tenant.id, workflow.id, 10, true)))
      const oldLive = await mk(tenant.id, workflow.id, 10, false)
      const recent = await mk(tenant.id, workflow.id, 2, true)
      const otherTenant = await mk(keeper.tenant.id, keeper.workflow.id, 100, true)
      let pauses = 0
      const result = await db.store.pruneExpired(now, { batch: 3, pause: async () => { pauses++ } })
      expect(result).toEqual({ runs: 10, events: 30, deliveries: 0 })
      expect(pauses).toBe(4) // 3 + 3 + 3 + 1: batched, yielding between batches
      for (const id of old) expect(await db.store.runs.getById(id)).toBeUndefined()
      for (const id of [oldLive, recent, otherTenant]) expect(await db.store.runs.getById(id)).toBeDefined()
      const [left] = await rawDb(db.store).select({ n: sql<number>`count(*)` }).from(events).where(and(eq(events.tenantId, tenant.id)))
      expect(Number(left!.n)).toBe(6)
    } finally {
      db.close()
    }
  })

  it('drops idempotency keys past their 24 hours, every tenant, and keeps the fresh ones', async () => {
    const db = await tempDatabase()
    try {
      const now = Date.parse('2027-03-01T00:00:00Z')
      await db.store.idempotency.claim('t1', 'old', 'h', now - 25 * 3_600_000, 1e12)
      await db.store.idempotency.claim('t2', 'fresh', 'h', now - 3_600_000, 1e12)
      // Answered keys: only their age can drop them.
      await db.store.idempotency.complete('t1', 'old', 202, '{}')
      await db.store.idempotency.complete('t2', 'fresh', 202, '{}')
      await db.store.pruneExpired(now)
      expect((await db.store.idempotency.claim('t1', 'old', 'other', now, 1e12)).claimed).toBe(true)
      expect((await db.store.idempotency.claim('t2', 'fresh', 'other', now, 1e12)).row).toMatchObject({ requestHash: 'h' })
    } finally {
      db.close()
    }
  })
})
