import type { Hono } from 'hono'
import * as z from 'zod'
import { newId } from '../../core/crypto.ts'
import type { ScheduleRow } from '../../db/schedules.ts'
import type { AppDeps, RouteContext } from '../context.ts'
import { cursorOf, valid } from '../context.ts'
import { tenantOf, type AuthEnv } from '../auth.ts'
import { ApiError, found } from '../errors.ts'
import { isoOf } from '../serialize.ts'
import { checkCron, nextOccurrence, resolveAt, timeZoneOptions, upcoming } from '../../services/scheduling.ts'
import { assertVariablesMatch } from '../../services/variables.ts'
import { Deleted, Id, IdParam, Pagination, Tag, list } from '../schemas.ts'

const NEXT_SHOWN = 5

const ScheduleFields = z.object({
  name: z.string().trim().min(1).max(200).optional(),
  variables: z.record(z.string(), z.unknown()).default({}),
  runtime_variables: z.record(z.string(), z.unknown()).default({}),
  tags: z.array(Tag).max(20).default([]),
  /** One-off: ISO 8601; without an offset it is a wall-clock time in `timezone`. */
  at: z.string().min(10).max(40).optional(),
  /** Recurring: five fields (minute hour day-of-month month day-of-week). */
  cron: z.string().min(9).max(200).optional(),
  timezone: z.string().min(1).max(64).default('UTC').describe('IANA name (Europe/Berlin) or GMT_plus_1 / GMT_minus_5_30'),
  misfire: z.enum(['run_once', 'skip']).default('run_once').describe('an occurrence missed while no scheduler ran: fire it once late, or skip it'),
  paused: z.boolean().default(false),
})
export const ScheduleCreate = ScheduleFields.extend({ workflow_id: Id }).strict()
  .refine((b) => (b.at === undefined) !== (b.cron === undefined), { message: 'give exactly one of at and cron', path: ['cron'] }).meta({ id: 'ScheduleCreate' })
export const ScheduleUpdate = z.object({
  name: z.string().trim().min(1).max(200).nullable().optional(),
  variables: z.record(z.string(), z.unknown()).optional(),
  runtime_variables: z.record(z.string(), z.unknown()).optional(),
  tags: z.array(Tag).max(20).optional(),
  at: z.string().min(10).max(40).optional(),
  cron: z.string().min(9).max(200).optional(),
  timezone: z.string().min(1).max(64).optional(),
  misfire: z.enum(['run_once', 'skip']).optional(),
  paused: z.boolean().optional(),
}).strict().refine((b) => b.at === undefined || b.cron === undefined, { message: 'give at most one of at and cron', path: ['cron'] }).meta({ id: 'ScheduleUpdate' })

const iso = z.string()
export const Schedule = z.object({
  id: z.string(), workflow_id: z.string(), name: z.string().nullable(), kind: z.enum(['at', 'cron']), cron: z.string().nullable(), at: iso.nullable(),
  timezone: z.string(), variables: z.record(z.string(), z.unknown()), runtime_variables: z.record(z.string(), z.unknown()), tags: z.array(z.string()),
  misfire: z.enum(['run_once', 'skip']), paused: z.boolean(), state: z.enum(['active', 'paused', 'finished']),
  next_fire_at: iso.nullable(), next_run_id: z.string().nullable().describe('the pre-created run of the next occurrence (status scheduled)'),
  next_fire_times: z.array(iso).describe(`the next ${NEXT_SHOWN} occurrences`),
  last_fire_at: iso.nullable(), last_run_id: z.string().nullable(), fires: z.number().int(), skipped: z.number().int(),
  last_error: z.string().nullable(), created_at: iso, updated_at: iso,
}).meta({ id: 'Schedule' })
const ScheduleListQuery = Pagination.extend({ workflow_id: Id.optional() })

export const scheduleBody = (s: ScheduleRow): z.infer<typeof Schedule> => ({
  id: s.id, workflow_id: s.workflowId, name: s.name, kind: s.cron ? 'cron' : 'at', cron: s.cron, at: isoOf(s.at), timezone: s.timezone,
  variables: s.variables, runtime_variables: s.runtimeVariables, tags: s.tags, misfire: s.misfire as 'run_once' | 'skip', paused: s.paused,
  state: s.paused ? 'paused' : s.nextFireAt === null ? 'finished' : 'active',
  next_fire_at: isoOf(s.nextFireAt), next_run_id: s.nextRunId, next_fire_times: upcoming(s, NEXT_SHOWN).map((t) => new Date(t).toISOString()),
  last_fire_at: isoOf(s.lastFireAt), last_run_id: s.lastRunId, fires: s.fires, skipped: s.skipped, last_error: s.lastError,
  created_at: new Date(s.createdAt).toISOString(), updated_at: new Date(s.updatedAt).toISOString(),
})

/** Schedules: one-off (`at`) or cron, each occurrence pre-created as a `scheduled` run. See src/services/scheduling.ts. */
export function registerScheduleRoutes(app: Hono<AuthEnv>, deps: AppDeps, { auth, documented }: RouteContext): void {
  const { store, clock, schedules: engine } = deps
  const q = engine.q

  const load = async (tenantId: string, scheduleId: string) => found(await q.get(tenantId, scheduleId), 'schedule')

  /** The first occurrence from now on, or a 400 when a one-off time has passed. */
  const firstFire = (s: Pick<ScheduleRow, 'cron' | 'at' | 'timezone' | 'misfire'>, now: number, creating: boolean): number | null => {
    if (s.cron) return nextOccurrence(s, now)
    if (s.at! > now) return s.at
    if (creating) throw new ApiError(400, 'validation_failed', 'at is in the past', [{ path: 'body.at', message: 'in the past' }])
    return null
  }

  /** Put a schedule (not paused) on its next occurrence and pre-create that run. */
  const activate = async (s: ScheduleRow, now: number, creating: boolean): Promise<ScheduleRow> => {
    const next = s.paused ? null : firstFire(s, now, creating)
    let row = (await q.update(s.id, { nextFireAt: next, nextRunId: null, updatedAt: now }))!
    if (next !== null) {
      await engine.ensureRun(row, now)
      row = (await q.getById(s.id))!
    }
    return row
  }

  let d = documented({ method: 'post', path: '/v1/schedules', summary: 'Create a schedule (one-off `at` or five-field `cron`, in a time zone); its next occurrence is pre-created as a scheduled run', tag: 'schedules', scope: 'runs:write', body: ScheduleCreate, response: Schedule, status: 201 })
  app.post(d.path, auth('runs:write'), valid('json', ScheduleCreate), async (c) => {
    const tenantId = tenantOf(c.get('principal'))
    const b = c.req.valid('json')
    const workflow = found(await store.catalog.getWorkflow(tenantId, b.workflow_id), 'workflow')
    const now = clock.now()
    timeZoneOptions(b.timezone)
    // Checked now, not only when it fires: a schedule that can never start a run is refused up front.
    assertVariablesMatch(workflow.variablesSchema, b.variables)
    if (b.cron) checkCron(b.cron, b.timezone, now)
    const at = b.at !== undefined ? resolveAt(b.at, b.timezone) : null
    if (at !== null && at <= now) throw new ApiError(400, 'validation_failed', 'at is in the past', [{ path: 'body.at', message: 'in the past' }])
    const row = await q.create({
      id: newId('sch'), tenantId, workflowId: workflow.id, name: b.name ?? null, cron: b.cron ?? null, at, timezone: b.timezone,
      variables: b.variables, runtimeVariables: b.runtime_variables, tags: b.tags, misfire: b.misfire, paused: b.paused,
      nextFireAt: null, nextRunId: null, fires: 0, skipped: 0, createdAt: now, updatedAt: now,
    })
    try {
      return c.json(scheduleBody(await activate(row, now, true)), 201)
    } catch (err) {
      // A template variable missing (400) and such: no half-made schedule is left behind.
      await q.delete(row.id)
      throw err
    }
  })

  d = documented({ method: 'get', path: '/v1/schedules', summary: 'List schedules, newest first', tag: 'schedules', scope: 'runs:read', query: ScheduleListQuery, response: list(Schedule) })
  app.get(d.path, auth('runs:read'), valid('query', ScheduleListQuery), async (c) => {
    const qs = c.req.valid('query')
    const page = await q.list(tenantOf(c.get('principal')), { workflowId: qs.workflow_id, cursor: cursorOf(qs.cursor), limit: qs.limit })
    return c.json({ items: page.items.map(scheduleBody), next_cursor: page.nextCursor })
  })

  d = documented({ method: 'get', path: '/v1/schedules/:id', summary: 'Read a schedule with its next fire times', tag: 'schedules', scope: 'runs:read', params: IdParam, response: Schedule })
  app.get(d.path, auth('runs:read'), valid('param', IdParam), async (c) => c.json(scheduleBody(await load(tenantOf(c.get('principal')), c.req.valid('param').id))))

  /** Any change: drop the waiting occurrence's run, apply, and (unless paused) wait for the next occurrence from now. */
  const change = async (tenantId: string, scheduleId: string, patch: z.infer<typeof ScheduleUpdate>) => {
    const s = await load(tenantId, scheduleId)
    const now = clock.now()
    const timezone = patch.timezone ?? s.timezone
    timeZoneOptions(timezone)
    let cron = s.cron, at = s.at
    if (patch.cron !== undefined) { checkCron(patch.cron, timezone, now); cron = patch.cron; at = null }
    else if (patch.at !== undefined) { at = resolveAt(patch.at, timezone); cron = null }
    else if (cron) checkCron(cron, timezone, now)
    if (patch.variables) assertVariablesMatch(found(await store.catalog.getWorkflow(tenantId, s.workflowId), 'workflow').variablesSchema, patch.variables)
    // Stop the waiting occurrence first (conditional on it), so no scheduler fires the old plan meanwhile.
    found(await q.update(s.id, { nextFireAt: null, nextRunId: null, updatedAt: now }), 'schedule')
    await engine.dropPending(s, 'schedule_changed')
    const updated = (await q.update(s.id, {
      name: patch.name === undefined ? s.name : patch.name, cron, at, timezone,
      variables: patch.variables ?? s.variables, runtimeVariables: patch.runtime_variables ?? s.runtimeVariables, tags: patch.tags ?? s.tags,
      misfire: patch.misfire ?? s.misfire, paused: patch.paused ?? s.paused, lastError: null, updatedAt: now,
    }))!
    return activate(updated, now, false)
  }

  d = documented({ method: 'patch', path: '/v1/schedules/:id', summary: 'Update a schedule (pause with {"paused": true}); the pending run is replaced', tag: 'schedules', scope: 'runs:write', params: IdParam, body: ScheduleUpdate, response: Schedule })
  app.patch(d.path, auth('runs:write'), valid('param', IdParam), valid('json', ScheduleUpdate), async (c) =>
    c.json(scheduleBody(await change(tenantOf(c.get('principal')), c.req.valid('param').id, c.req.valid('json')))))

  d = documented({ method: 'post', path: '/v1/schedules/:id/pause', summary: 'Pause a schedule (its pending run is canceled)', tag: 'schedules', scope: 'runs:write', params: IdParam, response: Schedule })
  app.post(d.path, auth('runs:write'), valid('param', IdParam), async (c) =>
    c.json(scheduleBody(await change(tenantOf(c.get('principal')), c.req.valid('param').id, { paused: true }))))

  d = documented({ method: 'post', path: '/v1/schedules/:id/resume', summary: 'Resume a schedule from the next occurrence after now', tag: 'schedules', scope: 'runs:write', params: IdParam, response: Schedule })
  app.post(d.path, auth('runs:write'), valid('param', IdParam), async (c) =>
    c.json(scheduleBody(await change(tenantOf(c.get('principal')), c.req.valid('param').id, { paused: false }))))

  d = documented({ method: 'delete', path: '/v1/schedules/:id', summary: 'Delete a schedule (its pending run is canceled)', tag: 'schedules', scope: 'runs:write', params: IdParam, response: Deleted })
  app.delete(d.path, auth('runs:write'), valid('param', IdParam), async (c) => {
    const s = await load(tenantOf(c.get('principal')), c.req.valid('param').id)
    await q.delete(s.id)
    await engine.dropPending(s, 'schedule_deleted')
    return c.json({ deleted: true as const, id: s.id })
  })
}
