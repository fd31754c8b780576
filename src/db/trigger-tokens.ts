import { and, eq, gt, lt, sql } from 'drizzle-orm'
import { triggerTokens } from './schema.ts'
import type { Db } from './db.ts'

export type TriggerTokenRow = typeof triggerTokens.$inferSelect

/** The run budget of trigger tokens. Each use is one conditional update, so concurrent triggers (any process) cannot pass `max_runs`. */
export class TriggerTokenQueries {
  constructor(readonly db: Db) {}

  async create(row: TriggerTokenRow): Promise<void> {
    await this.db.insert(triggerTokens).values(row)
  }

  async get(tenantId: string, id: string): Promise<TriggerTokenRow | undefined> {
    const [row] = await this.db.select().from(triggerTokens).where(and(eq(triggerTokens.id, id), eq(triggerTokens.tenantId, tenantId)))
    return row
  }

  /** Take one run from the token's budget; false when it is spent or expired. */
  async take(tenantId: string, id: string, now: number): Promise<boolean> {
    const rows = await this.db.update(triggerTokens).set({ usedRuns: sql`${triggerTokens.usedRuns} + 1` })
      .where(and(eq(triggerTokens.id, id), eq(triggerTokens.tenantId, tenantId), lt(triggerTokens.usedRuns, triggerTokens.maxRuns), gt(triggerTokens.expiresAt, now)))
      .returning({ used: triggerTokens.usedRuns })
    return rows.length === 1
  }

  /** Give a run back (the trigger it was taken for was refused). */
  async giveBack(tenantId: string, id: string): Promise<void> {
    await this.db.update(triggerTokens).set({ usedRuns: sql`max(${triggerTokens.usedRuns} - 1, 0)` })
      .where(and(eq(triggerTokens.id, id), eq(triggerTokens.tenantId, tenantId)))
  }

  /** Forget tokens that expired before `before` (retention). */
  async purgeExpired(before: number): Promise<number> {
    const rows = await this.db.delete(triggerTokens).where(lt(triggerTokens.expiresAt, before)).returning({ id: triggerTokens.id })
    return rows.length
  }
}
