import { asc, eq } from 'drizzle-orm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runs } from '../../src/db/schema.ts'
import type { Store } from '../../src/db/store.ts'
import { ScheduleEngine } from '../../src/services/scheduling.ts'
import { newId } from '../../src/core/crypto.ts'
import { fakeClock, recordingHosts, seedWorkflow, tempDatabase } from '../helpers/jobs.ts'
import { demoTenant } from '../helpers/live.ts'
import { startTestServer, type TestServer } from '../helpers/server.ts'
import { rawDb } from '../helpers/store.ts'

const T = (iso: string) => Date.parse(iso)
const isoList = (xs: number[]) => xs.map((x) => new Date(x).toISOString())

/** A schedule row written as the API would (first occurrence computed by the engine's helper). */
async function addSchedule(store: Store, now: number, tenantId: string, workflowId: string, s: { cron?: string; at?: number; timezone?: string; misfire?: 'run_once' | 'skip' }) {
  const { nextOccurrence } = await import('../../src/services/scheduling.ts')
  const row = { cron: s.cron ?? null, at: s.at ?? null, timezone: s.timezone ?? 'UTC' }
  return store.schedules.create({
    id: newId('sch'), tenantId, workflowId, ...row, variables: {}, runtimeVariables: {}, tags: [], misfire: s.misfire ?? 'run_once', paused: false,
    nextFireAt: nextOccurrence(row, now), nextRunId: null, fires: 0, skipped: 0, createdAt: now, updatedAt: now,
  })
}

const runsOf = (store: Store, scheduleId: string) =>
  rawDb(store).select().from(runs).where(eq(runs.scheduleId, scheduleId)).orderBy(asc(runs.scheduleFireAt), asc(runs.createdAt))

describe('schedule engine (fake clock, real libSQL)', () => {
  let db: Awaited<ReturnType<typeof tempDatabase>>
  beforeAll(async () => { db = await tempDatabase() })
  afterAll(() => db?.close())

  /** Step the clock to each occurrence in turn (plus `lateMs`) and run the engine there. */
  async function drive(engine: ScheduleEngine, clock: ReturnType<typeof fakeClock>, scheduleId: string, until: number, lateMs = 1_000) {
    const q = db.store.schedules
    for (let i = 0; i < 200; i++) {
      const s = (await q.getById(scheduleId))!
      if (s.nextFireAt === null || s.nextFireAt > until) return
      clock.set(s.nextFireAt + lateMs)
      await engine.runDueSchedules()
    }
  }

  it('a 02:30 Europe/Berlin cron fires once a day across the March and October DST transitions', async () => {
    const clock = fakeClock(T('2027-03-26T12:00:00Z'))
    const { tenant, workflow } = await seedWorkflow(db.store, clock.now())
    const engine = new ScheduleEngine({ store: db.store, clock, hosts: recordingHosts(db.store, clock) })
    const s = await addSchedule(db.store, clock.now(), tenant.id, workflow.id, { cron: '30 2 * * *', timezone: 'Europe/Berlin' })
    await engine.runDueSchedules()
    await drive(engine, clock, s.id, T('2027-03-30T12:00:00Z'))
    // 02:30 does not exist on 28 March (clocks jump 02:00 → 03:00): it fires once, at 03:00 CEST.
    const march = (await runsOf(db.store, s.id)).map((r) => r.scheduleFireAt!)
    expect(isoList(march)).toEqual(['2027-03-27T01:30:00.000Z', '2027-03-28T01:00:00.000Z', '2027-03-29T00:30:00.000Z', '2027-03-30T00:30:00.000Z', '2027-03-31T00:30:00.000Z'])

    // October: 02:30 happens twice on the 31st (CEST then CET); the schedule fires once.
    const q = db.store.schedules
    const clock2 = fakeClock(T('2027-10-29T12:00:00Z'))
    const engine2 = new ScheduleEngine({ store: db.store, clock: clock2, hosts: recordingHosts(db.store, clock2) })
    const s2 = await addSchedule(db.store, clock2.now(), tenant.id, workflow.id, { cron: '30 2 * * *', timezone: 'Europe/Berlin' })
    await engine2.runDueSchedules()
    await drive(engine2, clock2, s2.id, T('2027-11-02T12:00:00Z'))
    const october = (await runsOf(db.store, s2.id)).map((r) => r.scheduleFireAt!)
    expect(isoList(october)).toEqual(['2027-10-30T00:30:00.000Z', '2027-10-31T00:30:00.000Z', '2027-11-01T01:30:00.000Z', '2027-11-02T01:30:00.000Z', '2027-11-03T01:30:00.000Z'])
    // Every occurrence but the waiting one has fired exactly once; the waiting one is a scheduled run.
    const rows = await runsOf(db.store, s2.id)
    expect(rows.at(-1)!.status).toBe('scheduled')
    expect(rows.at(-1)!.scheduledAt).toBe(T('2027-11-03T01:30:00Z'))
    expect((await q.getById(s2.id))!.fires).toBe(4)
  })

  it('two scheduler instances racing over one database (and a restart) fire each occurrence once', async () => {
    const clock = fakeClock(T('2027-05-01T00:00:30Z'))
    const { tenant, workflow } = await seedWorkflow(db.store, clock.now())
    // Two instances: separate connections, separate engines and hosts, one database.
    const storeA = await db.open(), storeB = await db.open()
    let a = new ScheduleEngine({ store: storeA, clock, hosts: recordingHosts(storeA, clock) })
    const b = new ScheduleEngine({ store: storeB, clock, hosts: recordingHosts(storeB, clock) })
    const s = await addSchedule(db.store, clock.now(), tenant.id, workflow.id, { cron: '*/5 * * * *' })
    for (let minute = 0; minute < 120; minute++) {
      await Promise.all([a.runDueSchedules(), b.runDueSchedules(), a.runDueSchedules(), b.runDueSchedules()])
      if (minute === 60) {
        // A restart of instance A: a fresh engine over a fresh connection.
        const storeA2 = await db.open()
        a = new ScheduleEngine({ store: storeA2, clock, hosts: recordingHosts(storeA2, clock) })
      }
      clock.advance(60_000)
    }
    const rows = await runsOf(db.store, s.id)
    const live = rows.filter((r) => r.status !== 'canceled')
    const fires = live.map((r) => r.scheduleFireAt!)
    expect(new Set(fires).size).toBe(fires.length)
    // Due up to 01:59:30: 00:05 … 01:55 fired (23), 02:00 waiting as a scheduled run.
    const expected = Array.from({ length: 24 }, (_, i) => T('2027-05-01T00:05:00Z') + i * 300_000)
    expect(fires).toEqual(expected)
    const row = (await db.store.schedules.getById(s.id))!
    expect(row.fires).toBe(23)
    expect(row.nextRunId).toBe(live.at(-1)!.id)
  })

  it('misfire run_once: after downtime the late run stays (fires once), no catch-up, next occurrence after now', async () => {
    const clock = fakeClock(T('2027-06-01T00:30:00Z'))
    const { tenant, workflow } = await seedWorkflow(db.store, clock.now())
    const engine = new ScheduleEngine({ store: db.store, clock, hosts: recordingHosts(db.store, clock) })
    const s = await addSchedule(db.store, clock.now(), tenant.id, workflow.id, { cron: '0 * * * *', misfire: 'run_once' })
    await engine.runDueSchedules()
    clock.set(T('2027-06-01T05:20:00Z')) // down from 00:30 to 05:20: five occurrences missed
    await engine.runDueSchedules()
    const rows = await runsOf(db.store, s.id)
    expect(rows.map((r) => [new Date(r.scheduleFireAt!).toISOString(), r.status])).toEqual([
      ['2027-06-01T01:00:00.000Z', 'scheduled'], // late: the run host fires it once when it resumes
      ['2027-06-01T06:00:00.000Z', 'scheduled'],
    ])
  })

  it('misfire skip: a late run is canceled before it fires; the schedule continues after now', async () => {
    const clock = fakeClock(T('2027-06-01T00:30:00Z'))
    const { tenant, workflow } = await seedWorkflow(db.store, clock.now())
    const engine = new ScheduleEngine({ store: db.store, clock, hosts: recordingHosts(db.store, clock) }, { misfireGraceMs: 60_000 })
    const s = await addSchedule(db.store, clock.now(), tenant.id, workflow.id, { cron: '0 * * * *', misfire: 'skip' })
    await engine.runDueSchedules()
    clock.set(T('2027-06-01T01:00:30Z')) // within grace: fires normally
    await engine.runDueSchedules()
    clock.set(T('2027-06-01T05:20:00Z'))
    await engine.runDueSchedules()
    const rows = await runsOf(db.store, s.id)
    expect(rows.map((r) => [new Date(r.scheduleFireAt!).toISOString(), r.status])).toEqual([
      ['2027-06-01T01:00:00.000Z', 'scheduled'],
      ['2027-06-01T02:00:00.000Z', 'canceled'],
      ['2027-06-01T06:00:00.000Z', 'scheduled'],
    ])
    const row = (await db.store.schedules.getById(s.id))!
    expect([row.fires, row.skipped]).toEqual([1, 1])
  })

  it('a one-off schedule fires once and finishes', async () => {
    const clock = fakeClock(T('2027-06-01T00:00:00Z'))
    const { tenant, workflow } = await seedWorkflow(db.store, clock.now())
    const engine = new ScheduleEngine({ store: db.store, clock, hosts: recordingHosts(db.store, clock) })
    const s = await addSchedule(db.store, clock.now(), tenant.id, workflow.id, { at: T('2027-06-01T09:00:00Z') })
    await engine.runDueSchedules()
    clock.set(T('2027-06-01T09:00:01Z'))
    await engine.runDueSchedules()
    await engine.runDueSchedules()
    const rows = await runsOf(db.store, s.id)
    expect(rows.map((r) => r.scheduleFireAt)).toEqual([T('2027-06-01T09:00:00Z')])
    const row = (await db.store.schedules.getById(s.id))!
    expect([row.nextFireAt, row.fires, row.lastRunId]).toEqual([null, 1, rows[0]!.id])
  })
})

describe('schedules API', () => {
  let server: TestServer
  let t: Awaited<ReturnType<typeof demoTenant>>
  let wf: string
  beforeAll(async () => {
    server = await startTestServer()
    t = await demoTenant(server)
    wf = await t.workflow('nightly', { durationMs: 100, steps: 1, queueMs: 0 })
  })
  afterAll(async () => { await server?.stop() })

  it('creates a cron schedule with a pre-created scheduled run and the next five fire times', async () => {
    const res = await t.client.post('/v1/schedules', { workflow_id: wf, cron: '30 2 * * *', timezone: 'Europe/Berlin', variables: { a: 1 }, tags: ['nightly'] })
    expect(res.status).toBe(201)
    const s = res.body
    expect(s).toMatchObject({ kind: 'cron', state: 'active', misfire: 'run_once', paused: false, timezone: 'Europe/Berlin' })
    expect(s.next_fire_times).toHaveLength(5)
    expect(s.next_fire_times[0]).toBe(s.next_fire_at)
    for (const iso of s.next_fire_times) {
      const berlin = new Intl.DateTimeFormat('en-GB', { timeZone: 'Europe/Berlin', hour: '2-digit', minute: '2-digit' }).format(new Date(iso))
      expect(['02:30', '03:00']).toContain(berlin)
    }
    const run = await t.client.get(`/v1/runs/${s.next_run_id}`)
    expect(run.body).toMatchObject({ status: 'scheduled', scheduled_at: s.next_fire_at, tags: ['nightly'], variables: { a: 1 } })

    const paused = await t.client.post(`/v1/schedules/${s.id}/pause`)
    expect(paused.body).toMatchObject({ state: 'paused', next_fire_at: null, next_fire_times: [] })
    expect((await t.client.get(`/v1/runs/${s.next_run_id}`)).body.status).toBe('canceled')
    const resumed = await t.client.post(`/v1/schedules/${s.id}/resume`)
    expect(resumed.body).toMatchObject({ state: 'active', next_fire_at: s.next_fire_at })
    expect(resumed.body.next_run_id).not.toBe(s.next_run_id)
    expect((await t.client.get(`/v1/runs/${resumed.body.next_run_id}`)).body.status).toBe('scheduled')

    const patched = await t.client.patch(`/v1/schedules/${s.id}`, { paused: true })
    expect(patched.body.state).toBe('paused')
    const listed = await t.client.get(`/v1/schedules?workflow_id=${wf}`)
    expect(listed.body.items.map((x: { id: string }) => x.id)).toContain(s.id)
    const del = await t.client.delete(`/v1/schedules/${s.id}`)
    expect(del.body).toEqual({ deleted: true, id: s.id })
    expect((await t.client.get(`/v1/schedules/${s.id}`)).status).toBe(404)
  })

  it('reads a local `at` in a GMT_minus_5_30 zone and an IANA zone', async () => {
    const a = await t.client.post('/v1/schedules', { workflow_id: wf, at: '2030-07-01T09:00:00', timezone: 'GMT_minus_5_30' })
    expect(a.status).toBe(201)
    expect(a.body).toMatchObject({ kind: 'at', next_fire_at: '2030-07-01T14:30:00.000Z', next_fire_times: ['2030-07-01T14:30:00.000Z'] })
    const b = await t.client.post('/v1/schedules', { workflow_id: wf, at: '2030-07-01T09:00:00', timezone: 'GMT_plus_1' })
    expect(b.body.next_fire_at).toBe('2030-07-01T08:00:00.000Z')
    const c = await t.client.post('/v1/schedules', { workflow_id: wf, at: '2030-07-01T09:00:00', timezone: 'America/New_York' })
    expect(c.body.next_fire_at).toBe('2030-07-01T13:00:00.000Z')
    const d = await t.client.post('/v1/schedules', { workflow_id: wf, at: '2030-07-01T09:00:00Z', timezone: 'Asia/Tokyo' })
    expect(d.body.next_fire_at).toBe('2030-07-01T09:00:00.000Z')
  })

  it('refuses bad input with 400 and other tenants\' schedules with 404', async () => {
    const bad = async (body: Record<string, unknown>, code: string) => {
      const res = await t.client.post('/v1/schedules', { workflow_id: wf, ...body })
      expect([res.status, res.body.error.code]).toEqual([400, code])
    }
    await bad({ cron: '30 2 * * * * * *' }, 'invalid_cron')
    await bad({ cron: '61 2 * * *' }, 'invalid_cron')
    await bad({ cron: '0 0 30 2 *' }, 'invalid_cron')
    await bad({ cron: '* * * * *', timezone: 'Mars/Olympus' }, 'invalid_timezone')
    await bad({}, 'validation_failed')
    await bad({ cron: '* * * * *', at: '2030-01-01T00:00:00Z' }, 'validation_failed')
    await bad({ at: '2001-01-01T00:00:00Z' }, 'validation_failed')
    const s = await t.client.post('/v1/schedules', { workflow_id: wf, cron: '0 * * * *' })
    const other = await demoTenant(server, 'other')
    expect((await other.client.get(`/v1/schedules/${s.body.id}`)).status).toBe(404)
  })

  it('a one-off schedule fires through the run host and completes', async () => {
    const at = new Date(Date.now() + 600).toISOString()
    const s = await t.client.post('/v1/schedules', { workflow_id: wf, at })
    expect(s.status).toBe(201)
    const runId = s.body.next_run_id
    const deadline = Date.now() + 10_000
    let status = ''
    while (Date.now() < deadline && status !== 'completed') {
      status = (await t.client.get(`/v1/runs/${runId}`)).body.status
      await new Promise((r) => setTimeout(r, 50))
    }
    expect(status).toBe('completed')
    const after = await t.client.get(`/v1/schedules/${s.body.id}`)
    const deadline2 = Date.now() + 5_000
    let body = after.body
    while (Date.now() < deadline2 && body.state !== 'finished') {
      await new Promise((r) => setTimeout(r, 50))
      body = (await t.client.get(`/v1/schedules/${s.body.id}`)).body
    }
    expect(body).toMatchObject({ state: 'finished', fires: 1, last_run_id: runId })
  })
})
