import { and, eq, inArray, isNotNull, lt, ne } from 'drizzle-orm'
import { events, idempotencyKeys, runs, tenants, webhookAttempts, webhookDeliveries, tokenRevocations } from './schema.ts'
import type { Db } from './db.ts'
import { TriggerTokenQueries } from './trigger-tokens.ts'

export interface PruneResult { runs: number; events: number; deliveries: number }

export interface PruneOptions {
  /** Rows per delete (default 500): short write transactions the server's own writes slip between. */
  batch?: number
  /** Awaited between batches so requests, ticks and streams are served meanwhile. */
  pause?: () => Promise<void>
  /** Stop early (shutdown). */
  stopped?: () => boolean
}

/** Stripe keeps idempotency keys 24 hours (the trigger routes use the same TTL). */
export const IDEMPOTENCY_TTL_MS = 24 * 3_600_000

const yieldToOthers = () => new Promise<void>((resolve) => setTimeout(resolve, 0))

/**
 * Retention: for each tenant with `retention_days`, delete finished runs created more than that
 * many days ago with all their events, and finished webhook deliveries (with their attempts) as
 * old. Unfinished runs and their events are kept whatever their age (a resume needs them).
 * Idempotency keys past their 24 hours are dropped for every tenant.
 */
export async function pruneExpired(db: Db, now: number, opts: PruneOptions = {}): Promise<PruneResult> {
  const batch = opts.batch ?? 500
  const pause = opts.pause ?? yieldToOthers
  const out: PruneResult = { runs: 0, events: 0, deliveries: 0 }
  const withRetention = await db.select({ id: tenants.id, days: tenants.retentionDays }).from(tenants).where(isNotNull(tenants.retentionDays))
  for (const t of withRetention) {
    const cutoff = now - t.days! * 86_400_000
    for (;;) {
      if (opts.stopped?.()) return out
      const ids = (await db.select({ id: runs.id }).from(runs)
        .where(and(eq(runs.tenantId, t.id), lt(runs.createdAt, cutoff), isNotNull(runs.finishedAt))).limit(batch)).map((r) => r.id)
      if (ids.length === 0) break
      const [evs, rs] = await db.batch([
        db.delete(events).where(inArray(events.runId, ids)).returning({ id: events.id }),
        db.delete(runs).where(inArray(runs.id, ids)).returning({ id: runs.id }),
      ])
      out.events += evs.length
      out.runs += rs.length
      await pause()
    }
    for (;;) {
      if (opts.stopped?.()) return out
      const ids = (await db.select({ id: webhookDeliveries.id }).from(webhookDeliveries)
        .where(and(eq(webhookDeliveries.tenantId, t.id), lt(webhookDeliveries.createdAt, cutoff), ne(webhookDeliveries.status, 'pending'))).limit(batch)).map((r) => r.id)
      if (ids.length === 0) break
      const [, ds] = await db.batch([
        db.delete(webhookAttempts).where(inArray(webhookAttempts.deliveryId, ids)),
        db.delete(webhookDeliveries).where(inArray(webhookDeliveries.id, ids)).returning({ id: webhookDeliveries.id }),
      ])
      out.deliveries += ds.length
      await pause()
    }
  }
  // Expired keys are otherwise only dropped when the same key comes again.
  await db.delete(idempotencyKeys).where(lt(idempotencyKeys.createdAt, now - IDEMPOTENCY_TTL_MS))
  // A trigger token's budget is useless once the token has expired.
  await new TriggerTokenQueries(db).purgeExpired(now)
  // A token revocation outlives every token it can refuse by nothing.
  await db.delete(tokenRevocations).where(lt(tokenRevocations.expiresAt, now))
  return out
}
