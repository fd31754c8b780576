import { Cron } from 'croner'
import type { Clock } from '../core/ports.ts'
import { ScheduleQueries, type ScheduleRow } from '../db/schedules.ts'
import type { RunRow, Store } from '../db/store.ts'
import { ApiError } from './errors.ts'
import type { RunHosts } from './hosts.ts'
import { triggerRun } from './trigger.ts'

/**
 * Schedules, portable: no timers here. A runtime calls `runDueSchedules(now)` when something
 * may be due (Node/Deno: an in-process timer, see runtime/local/scheduler.ts; Workers: a DO
 * alarm or a Cron Trigger) and again at the `wakeAt` it returns.
 *
 * Model: a schedule always has its next occurrence pre-created as a run in status `scheduled`
 * (visible in GET /v1/runs, subscribable before it starts). The run host fires that run at
 * its time like any run with `scheduled_at`. When the occurrence's time has come, the
 * scheduler *claims* it with a conditional UPDATE of `next_fire_at` (only one caller's update
 * matches), moves the schedule to the following occurrence and pre-creates that run. A
 * partial unique index on runs (schedule_id, schedule_fire_at) for live runs makes creating an
 * occurrence's run idempotent, so a crash between claim and create, a restart, or two
 * instances racing never give an occurrence two runs.
 *
 * Misfires (the scheduler did not run at an occurrence, e.g. the server was down): only the
 * next occurrence is ever pre-created, so however many were missed at most one is late.
 *   - `run_once` (default): the late run fires once when the server is back; the missed ones
 *     after it are not made up; the schedule continues with the next occurrence after now.
 *   - `skip`: a run later than `misfireGraceMs` (60 s) is canceled (reason misfire_skipped,
 *     counted in `skipped`) before it fires; the schedule continues after now.
 * For `skip` to win against the run host, run the scheduler once before resuming runs after a
 * restart (the local runtime does).
 */

export type Misfire = 'run_once' | 'skip'

/** croner options for a time zone given as an IANA name or as GMT_plus_1 / GMT_minus_5_30 (Indigenius style). */
export function timeZoneOptions(tz: string): { timezone?: string; utcOffset?: number } {
  const m = /^(?:GMT|UTC)_(plus|minus)_(\d{1,2})(?:_(\d{2}))?$/i.exec(tz)
  if (m) {
    const hours = Number(m[2]), minutes = Number(m[3] ?? 0)
    if (hours > 14 || minutes >= 60) throw new ApiError(400, 'invalid_timezone', `time zone offset out of range: ${tz}`, [{ path: 'body.timezone', message: 'offset out of range' }])
    return { utcOffset: (m[1]!.toLowerCase() === 'plus' ? 1 : -1) * (hours * 60 + minutes) }
  }
  if (/^(UTC|GMT|Z)$/i.test(tz)) return { utcOffset: 0 }
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz })
  } catch {
    throw new ApiError(400, 'invalid_timezone', `unknown time zone ${tz}: give an IANA name (Europe/Berlin) or GMT_plus_1 / GMT_minus_5_30`, [{ path: 'body.timezone', message: 'unknown time zone' }])
  }
  return { timezone: tz }
}

function cronOf(pattern: string, tz: string): Cron {
  return new Cron(pattern, { ...timeZoneOptions(tz), paused: true, mode: '5-part' })
}

/** Validate a five-field cron pattern: 400 when it does not parse or never fires. */
export function checkCron(pattern: string, tz: string, now: number): void {
  let next: Date | null
  try {
    next = cronOf(pattern, tz).nextRun(new Date(now))
  } catch (err) {
    throw new ApiError(400, 'invalid_cron', `invalid cron pattern: ${(err as Error).message}`, [{ path: 'body.cron', message: (err as Error).message }])
  }
  if (!next) throw new ApiError(400, 'invalid_cron', 'this cron pattern never fires', [{ path: 'body.cron', message: 'never fires' }])
}

/** The instant of `at`: with an offset (Z, +02:00) as given, without one as a wall-clock time in `tz`. */
export function resolveAt(at: string, tz: string): number {
  if (/(Z|[+-]\d{2}:?\d{2})$/i.test(at)) {
    const t = Date.parse(at)
    if (Number.isNaN(t)) throw new ApiError(400, 'validation_failed', 'at is not an ISO 8601 date-time', [{ path: 'body.at', message: 'not ISO 8601' }])
    return t
  }
  const naive = Date.parse(`${at}Z`)
  if (Number.isNaN(naive) || !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/.test(at)) {
    throw new ApiError(400, 'validation_failed', 'at is not an ISO 8601 date-time', [{ path: 'body.at', message: 'not ISO 8601' }])
  }
  // croner reads an offset-less ISO date-time in its time zone; start looking well before any offset.
  const next = new Cron(at, { ...timeZoneOptions(tz), paused: true }).nextRun(new Date(naive - 2 * 86_400_000))
  if (!next) throw new ApiError(400, 'validation_failed', 'at does not exist in this time zone', [{ path: 'body.at', message: 'no such local time' }])
  return next.getTime()
}

/** The first occurrence of a schedule strictly after `after`, or null when there is none. */
export function nextOccurrence(s: Pick<ScheduleRow, 'cron' | 'at' | 'timezone'>, after: number): number | null {
  if (s.cron) return cronOf(s.cron, s.timezone).nextRun(new Date(after))?.getTime() ?? null
  return s.at !== null && s.at > after ? s.at : null
}

/** The next `n` fire times of a schedule from its waiting occurrence on. */
export function upcoming(s: ScheduleRow, n: number): number[] {
  if (s.paused || s.nextFireAt === null) return []
  const out = [s.nextFireAt]
  if (s.cron) {
    for (const d of cronOf(s.cron, s.timezone).nextRuns(n - 1, new Date(s.nextFireAt))) out.push(d.getTime())
  }
  return out
}

export interface ScheduleEngineDeps {
  store: Store
  clock: Clock
  hosts: RunHosts
  log?: (msg: string, extra?: Record<string, unknown>) => void
}

export interface ScheduleEngineOptions {
  /** How late a `skip` occurrence may still fire (default 60 s). */
  misfireGraceMs?: number
  /** Schedules handled per pass (default 200). */
  batch?: number
}

export interface DueResult { fired: number; skipped: number; created: number; wakeAt: number | null }

const isUniqueViolation = (err: unknown) => /UNIQUE constraint failed/i.test(String((err as Error)?.message ?? err) + String((err as { cause?: Error })?.cause?.message ?? ''))

/** Schedule state machine over the store; safe to run on several instances at once. */
export class ScheduleEngine {
  readonly q: ScheduleQueries
  private readonly graceMs: number
  private readonly batch: number

  constructor(private readonly deps: ScheduleEngineDeps, opts: ScheduleEngineOptions = {}) {
    this.q = deps.store.schedules
    this.graceMs = opts.misfireGraceMs ?? 60_000
    this.batch = opts.batch ?? 200
  }

  /**
   * Fire what is due at `now`: claim every occurrence whose time has come, move its schedule
   * on and pre-create the next occurrence's run; also create runs missing for waiting
   * occurrences. Returns when to call again (`wakeAt`, the earliest waiting occurrence).
   */
  async runDueSchedules(now = this.deps.clock.now()): Promise<DueResult> {
    const result: DueResult = { fired: 0, skipped: 0, created: 0, wakeAt: null }
    for (const s of await this.q.listDue(now, this.batch)) {
      try { await this.advance(s, now, result) } catch (err) { this.deps.log?.('schedule advance failed', { scheduleId: s.id, error: String((err as Error)?.stack ?? err) }) }
    }
    for (const s of await this.q.listUnlinked(this.batch)) {
      if (s.nextFireAt !== null && s.nextFireAt <= now && s.misfire === 'skip' && now - s.nextFireAt > this.graceMs) continue // handled as due next pass
      try { if (await this.ensureRun(s, now)) result.created++ } catch (err) { this.deps.log?.('schedule run creation failed', { scheduleId: s.id, error: String((err as Error)?.stack ?? err) }) }
    }
    result.wakeAt = await this.q.earliestFire()
    return result
  }

  /** The occurrence `s.nextFireAt` has come: claim it and move on to the following one. */
  private async advance(s: ScheduleRow, now: number, result: DueResult): Promise<void> {
    const fireAt = s.nextFireAt!
    let skipped = false
    if (s.misfire === 'skip' && now - fireAt > this.graceMs) {
      // Too late: cancel the pre-created run before the run host starts it (a run already started stays).
      const run = s.nextRunId ? await this.deps.store.runs.getById(s.nextRunId) : undefined
      if (!run || run.status === 'scheduled') {
        skipped = true
        if (run) await this.cancel(run, 'misfire_skipped')
      }
    }
    const next = nextOccurrence(s, Math.max(fireAt, now))
    const claimed = await this.q.claim(s.id, fireAt, {
      nextFireAt: next, nextRunId: null, lastFireAt: fireAt, lastRunId: skipped ? s.lastRunId : s.nextRunId,
      fires: s.fires + (skipped ? 0 : 1), skipped: s.skipped + (skipped ? 1 : 0), updatedAt: now,
    })
    if (!claimed) return // another scheduler moved it first
    if (skipped) result.skipped++
    else result.fired++
    if (claimed.nextFireAt !== null && await this.ensureRun(claimed, now)) result.created++
  }

  /**
   * Make sure the waiting occurrence of `s` has its run; returns true when this call created
   * it. Idempotent and race-safe: the unique index refuses a second live run of an occurrence.
   */
  async ensureRun(s: ScheduleRow, now: number): Promise<boolean> {
    const fireAt = s.nextFireAt
    if (fireAt === null || s.paused || s.nextRunId) return false
    let run = await this.q.runOfFire(s.id, fireAt)
    let created = false
    if (!run) {
      const workflow = await this.deps.store.catalog.getWorkflow(s.tenantId, s.workflowId)
      try {
        if (!workflow) throw new ApiError(409, 'workflow_missing', 'the schedule\'s workflow is gone')
        run = await triggerRun(this.deps, workflow, {
          variables: s.variables, runtime_variables: s.runtimeVariables, tags: s.tags, scheduled_at: new Date(fireAt).toISOString(),
        }, { occurrence: { scheduleId: s.id, fireAt } })
        created = true
      } catch (err) {
        if (isUniqueViolation(err)) {
          run = await this.q.runOfFire(s.id, fireAt)
          if (!run) throw err
        } else if (err instanceof ApiError) {
          // Not the store's fault (a missing variable, the workflow gone): keep the reason, retry next pass.
          await this.q.update(s.id, { lastError: `${err.code}: ${err.message}`, updatedAt: now })
          throw err
        } else throw err
      }
    }
    const linked = await this.q.link(s.id, fireAt, run.id, now)
    if (!linked && created) {
      // The schedule moved while the run was made (paused, deleted, edited): the run is an orphan.
      const fresh = await this.q.getById(s.id)
      if (!fresh || fresh.nextRunId !== run.id) await this.cancel(run, 'schedule_changed')
      return false
    }
    return created
  }

  /** Stop the waiting occurrence: cancel its pre-created run if it has not started. */
  async dropPending(s: ScheduleRow, reason: string): Promise<void> {
    if (!s.nextRunId) return
    const run = await this.deps.store.runs.getById(s.nextRunId)
    if (run && run.status === 'scheduled') await this.cancel(run, reason)
  }

  private async cancel(run: RunRow, reason: string): Promise<void> {
    try {
      await this.deps.hosts.command(run, 'cancel', { reason }, 'schedule')
    } catch (err) {
      this.deps.log?.('schedule could not cancel a run', { runId: run.id, reason, error: String((err as Error)?.message ?? err) })
    }
  }
}
