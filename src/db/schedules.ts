import { and, asc, eq, isNotNull, isNull, lte, min, ne } from 'drizzle-orm'
import { runs, schedules } from './schema.ts'
import type { Db } from './db.ts'
import { newestFirst, type Page } from './page.ts'
import type { RunRow } from './runs.ts'

export type ScheduleRow = typeof schedules.$inferSelect
export type ScheduleInsert = typeof schedules.$inferInsert
export type SchedulePatch = Partial<Omit<ScheduleInsert, 'id' | 'tenantId' | 'createdAt'>>

/** Schedule persistence. Every state move of an occurrence is a conditional update, so concurrent schedulers cannot both make it. */
export class ScheduleQueries {
  constructor(readonly db: Db) {}

  async create(row: ScheduleInsert): Promise<ScheduleRow> {
    const [s] = await this.db.insert(schedules).values(row).returning()
    return s!
  }

  async get(tenantId: string, id: string): Promise<ScheduleRow | undefined> {
    const [s] = await this.db.select().from(schedules).where(and(eq(schedules.id, id), eq(schedules.tenantId, tenantId)))
    return s
  }

  async getById(id: string): Promise<ScheduleRow | undefined> {
    const [s] = await this.db.select().from(schedules).where(eq(schedules.id, id))
    return s
  }

  async list(tenantId: string, f: { workflowId?: string; cursor: [number, string] | null; limit: number }): Promise<Page<ScheduleRow>> {
    const conds = [eq(schedules.tenantId, tenantId)]
    if (f.workflowId) conds.push(eq(schedules.workflowId, f.workflowId))
    return newestFirst(this.db, schedules, conds, f.cursor, f.limit)
  }

  async update(id: string, patch: SchedulePatch): Promise<ScheduleRow | undefined> {
    const [s] = await this.db.update(schedules).set(patch).where(eq(schedules.id, id)).returning()
    return s
  }

  async delete(id: string): Promise<boolean> {
    const rows = await this.db.delete(schedules).where(eq(schedules.id, id)).returning({ id: schedules.id })
    return rows.length > 0
  }

  /** Active schedules whose waiting occurrence has come. */
  listDue(now: number, limit: number): Promise<ScheduleRow[]> {
    return this.db.select().from(schedules).where(and(isNotNull(schedules.nextFireAt), lte(schedules.nextFireAt, now), eq(schedules.paused, false)))
      .orderBy(asc(schedules.nextFireAt)).limit(limit)
  }

  /** Active schedules whose waiting occurrence has no run yet (new, resumed, or a crash between claim and create). */
  listUnlinked(limit: number): Promise<ScheduleRow[]> {
    return this.db.select().from(schedules).where(and(isNotNull(schedules.nextFireAt), isNull(schedules.nextRunId), eq(schedules.paused, false)))
      .orderBy(asc(schedules.nextFireAt)).limit(limit)
  }

  async earliestFire(): Promise<number | null> {
    const [r] = await this.db.select({ at: min(schedules.nextFireAt) }).from(schedules).where(eq(schedules.paused, false))
    return r?.at ?? null
  }

  /**
   * Move a schedule past the occurrence `fireAt`: only the caller whose update matches the
   * occurrence still waiting wins (the atomic claim of a fire).
   */
  async claim(id: string, fireAt: number, patch: SchedulePatch): Promise<ScheduleRow | undefined> {
    const [s] = await this.db.update(schedules).set(patch).where(and(eq(schedules.id, id), eq(schedules.nextFireAt, fireAt), eq(schedules.paused, false))).returning()
    return s
  }

  /** Record the run of the waiting occurrence, if the schedule still waits for it. */
  async link(id: string, fireAt: number, runId: string, now: number): Promise<boolean> {
    const rows = await this.db.update(schedules).set({ nextRunId: runId, lastError: null, updatedAt: now })
      .where(and(eq(schedules.id, id), eq(schedules.nextFireAt, fireAt), isNull(schedules.nextRunId), eq(schedules.paused, false))).returning({ id: schedules.id })
    return rows.length > 0
  }

  /** The live (not canceled) run of an occurrence. */
  async runOfFire(scheduleId: string, fireAt: number): Promise<RunRow | undefined> {
    const [r] = await this.db.select().from(runs).where(and(eq(runs.scheduleId, scheduleId), eq(runs.scheduleFireAt, fireAt), ne(runs.status, 'canceled')))
    return r
  }
}
