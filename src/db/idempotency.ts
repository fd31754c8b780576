import { and, eq, isNull, lt } from 'drizzle-orm'
import type { Db } from './db.ts'
import { idempotencyKeys } from './schema.ts'

export type IdempotencyRow = typeof idempotencyKeys.$inferSelect

/** Idempotency keys: a request's claim, the id it reserves for what it creates, and the answer replayed to retries. */
export class IdempotencyStore {
  constructor(private readonly db: Db) {}

  /**
   * Claim an idempotency key, reserving `resourceId` for what the request creates. Returns
   * `claimed: true` for the first request, else the stored row (possibly still without an
   * answer, while the first request runs or after it died). Only keys older than `ttlMs` are
   * forgotten (Stripe's 24 hours): a claim is never taken over by time, as a takeover that made
   * a new id could make a second run.
   */
  async claim(tenantId: string, key: string, requestHash: string, now: number, ttlMs: number, resourceId: string | null = null): Promise<{ claimed: boolean; row: IdempotencyRow }> {
    const where = and(eq(idempotencyKeys.tenantId, tenantId), eq(idempotencyKeys.key, key))
    await this.db.delete(idempotencyKeys).where(and(where, lt(idempotencyKeys.createdAt, now - ttlMs)))
    const [inserted] = await this.db.insert(idempotencyKeys).values({ tenantId, key, requestHash, resourceId, createdAt: now }).onConflictDoNothing().returning()
    if (inserted) return { claimed: true, row: inserted }
    const [row] = await this.db.select().from(idempotencyKeys).where(where)
    // Deleted between the insert and the read (expired at that very moment): claim again.
    if (!row) return this.claim(tenantId, key, requestHash, now, ttlMs, resourceId)
    return { claimed: false, row }
  }

  /** Store the answer given to a key's request (replayed to every retry). */
  async complete(tenantId: string, key: string, status: number, body: string): Promise<void> {
    await this.db.update(idempotencyKeys).set({ responseStatus: status, responseBody: body }).where(and(eq(idempotencyKeys.tenantId, tenantId), eq(idempotencyKeys.key, key)))
  }

  /** Forget a key whose request certainly created nothing (refused before any write), so a retry proceeds. */
  async release(tenantId: string, key: string): Promise<void> {
    await this.db.delete(idempotencyKeys).where(and(eq(idempotencyKeys.tenantId, tenantId), eq(idempotencyKeys.key, key), isNull(idempotencyKeys.responseStatus)))
  }

  /** Move an unanswered claim's start to `at`: now for a retry that takes it over (concurrent retries then wait), or back past the in-flight window for a request that failed (its retry takes over at once). */
  async touch(tenantId: string, key: string, at: number): Promise<void> {
    await this.db.update(idempotencyKeys).set({ createdAt: at }).where(and(eq(idempotencyKeys.tenantId, tenantId), eq(idempotencyKeys.key, key), isNull(idempotencyKeys.responseStatus)))
  }
}
