import { and, asc, eq, gt, inArray, lte, sql } from 'drizzle-orm'
import { events, runs, settings, webhookAttempts, webhookDeliveries, webhookEndpoints } from './schema.ts'
import type { Db } from './db.ts'
import { newestFirst, type Page } from './page.ts'
import type { EventRow, RunRow } from './runs.ts'

export type WebhookEndpointRow = typeof webhookEndpoints.$inferSelect
export type WebhookDeliveryRow = typeof webhookDeliveries.$inferSelect
export type WebhookAttemptRow = typeof webhookAttempts.$inferSelect

export interface DeliveryFilter {
  endpointId?: string
  status?: WebhookDeliveryRow['status'][]
  runId?: string
  eventType?: string
  cursor: [number, string] | null
  limit: number
}

/** Outbound webhook persistence: endpoints, deliveries (one per endpoint and event), attempts. */
export class WebhookQueries {
  constructor(readonly db: Db) {}

  // endpoints ----------------------------------------------------------------
  async createEndpoint(row: typeof webhookEndpoints.$inferInsert): Promise<WebhookEndpointRow> {
    const [e] = await this.db.insert(webhookEndpoints).values(row).returning()
    return e!
  }

  async getEndpoint(tenantId: string, id: string): Promise<WebhookEndpointRow | undefined> {
    const [e] = await this.db.select().from(webhookEndpoints).where(and(eq(webhookEndpoints.id, id), eq(webhookEndpoints.tenantId, tenantId)))
    return e
  }

  async listEndpoints(tenantId: string, f: { workflowId?: string; cursor: [number, string] | null; limit: number }): Promise<Page<WebhookEndpointRow>> {
    const conds = [eq(webhookEndpoints.tenantId, tenantId)]
    if (f.workflowId) conds.push(eq(webhookEndpoints.workflowId, f.workflowId))
    return newestFirst(this.db, webhookEndpoints, conds, f.cursor, f.limit)
  }

  /** Every enabled endpoint (a small table; the dispatcher matches events against it in memory). */
  enabledEndpoints(): Promise<WebhookEndpointRow[]> {
    return this.db.select().from(webhookEndpoints).where(eq(webhookEndpoints.enabled, true))
  }

  async updateEndpoint(id: string, patch: Partial<typeof webhookEndpoints.$inferInsert>): Promise<WebhookEndpointRow | undefined> {
    const [e] = await this.db.update(webhookEndpoints).set(patch).where(eq(webhookEndpoints.id, id)).returning()
    return e
  }

  async deleteEndpoint(id: string): Promise<void> {
    await this.db.batch([
      this.db.delete(webhookEndpoints).where(eq(webhookEndpoints.id, id)),
      // Pending deliveries of a deleted endpoint would never be sent; the log of sent ones stays.
      this.db.update(webhookDeliveries).set({ status: 'failed', nextAttemptAt: null, lastError: 'endpoint deleted' })
        .where(and(eq(webhookDeliveries.endpointId, id), eq(webhookDeliveries.status, 'pending'))),
    ])
  }

  /** Record the first failure of a streak (kept when one is already running). */
  async markFailing(id: string, now: number): Promise<WebhookEndpointRow | undefined> {
    const [e] = await this.db.update(webhookEndpoints).set({ failingSince: sql`coalesce(${webhookEndpoints.failingSince}, ${now})` })
      .where(eq(webhookEndpoints.id, id)).returning()
    return e
  }

  async disableEndpoint(id: string, reason: string, now: number): Promise<void> {
    await this.db.update(webhookEndpoints).set({ enabled: false, disabledReason: reason, disabledAt: now, updatedAt: now })
      .where(and(eq(webhookEndpoints.id, id), eq(webhookEndpoints.enabled, true)))
  }

  // the event cursor -----------------------------------------------------------
  async cursor(key: string, initial: () => Promise<number>, now: number): Promise<number> {
    const [row] = await this.db.select().from(settings).where(eq(settings.key, key))
    if (row) return Number(row.value)
    await this.db.insert(settings).values({ key, value: String(await initial()), updatedAt: now }).onConflictDoNothing()
    const [again] = await this.db.select().from(settings).where(eq(settings.key, key))
    return Number(again!.value)
  }

  /** Move the cursor forward only (two dispatchers may race; the later position wins). */
  async advanceCursor(key: string, to: number, now: number): Promise<void> {
    await this.db.update(settings).set({ value: String(to), updatedAt: now })
      .where(and(eq(settings.key, key), sql`cast(${settings.value} as integer) < ${to}`))
  }

  async maxEventId(): Promise<number> {
    const [r] = await this.db.select({ id: sql<number | null>`max(${events.id})` }).from(events)
    return Number(r?.id ?? 0)
  }

  eventsAfter(afterId: number, limit: number): Promise<EventRow[]> {
    return this.db.select().from(events).where(gt(events.id, afterId)).orderBy(asc(events.id)).limit(limit)
  }

  runsByIds(ids: string[]): Promise<RunRow[]> {
    return ids.length ? this.db.select().from(runs).where(inArray(runs.id, ids)) : Promise.resolve([])
  }

  // deliveries ---------------------------------------------------------------
  /** Insert deliveries; one per (endpoint, event) however often an event is scanned. */
  async insertDeliveries(rows: (typeof webhookDeliveries.$inferInsert)[]): Promise<number> {
    if (rows.length === 0) return 0
    const inserted = await this.db.insert(webhookDeliveries).values(rows).onConflictDoNothing().returning({ id: webhookDeliveries.id })
    return inserted.length
  }

  /** Pending deliveries due at `now` whose endpoint is enabled (a disabled endpoint's wait until it is enabled again). */
  async dueDeliveries(now: number, limit: number): Promise<Array<{ d: WebhookDeliveryRow; e: WebhookEndpointRow }>> {
    return this.db.select({ d: webhookDeliveries, e: webhookEndpoints }).from(webhookDeliveries)
      .innerJoin(webhookEndpoints, eq(webhookEndpoints.id, webhookDeliveries.endpointId))
      .where(and(eq(webhookDeliveries.status, 'pending'), lte(webhookDeliveries.nextAttemptAt, now), eq(webhookEndpoints.enabled, true)))
      .orderBy(asc(webhookDeliveries.nextAttemptAt)).limit(limit)
  }

  async earliestDue(): Promise<number | null> {
    const [r] = await this.db.select({ at: sql<number | null>`min(${webhookDeliveries.nextAttemptAt})` }).from(webhookDeliveries)
      .innerJoin(webhookEndpoints, eq(webhookEndpoints.id, webhookDeliveries.endpointId))
      .where(and(eq(webhookDeliveries.status, 'pending'), eq(webhookEndpoints.enabled, true)))
    return r?.at ?? null
  }

  /** Lease a due delivery: only the caller whose update matches the time it read sends it. */
  async claimDelivery(id: string, dueAt: number, leaseUntil: number): Promise<boolean> {
    const rows = await this.db.update(webhookDeliveries).set({ nextAttemptAt: leaseUntil })
      .where(and(eq(webhookDeliveries.id, id), eq(webhookDeliveries.status, 'pending'), eq(webhookDeliveries.nextAttemptAt, dueAt))).returning({ id: webhookDeliveries.id })
    return rows.length > 0
  }

  /** Write an attempt and the delivery's new state together. */
  async recordAttempt(attempt: typeof webhookAttempts.$inferInsert, deliveryId: string, patch: Partial<typeof webhookDeliveries.$inferInsert>): Promise<void> {
    await this.db.batch([
      this.db.insert(webhookAttempts).values(attempt),
      this.db.update(webhookDeliveries).set(patch).where(eq(webhookDeliveries.id, deliveryId)),
    ])
  }

  async getDelivery(tenantId: string, id: string): Promise<WebhookDeliveryRow | undefined> {
    const [d] = await this.db.select().from(webhookDeliveries).where(and(eq(webhookDeliveries.id, id), eq(webhookDeliveries.tenantId, tenantId)))
    return d
  }

  async listDeliveries(tenantId: string, f: DeliveryFilter): Promise<Page<WebhookDeliveryRow>> {
    const conds = [eq(webhookDeliveries.tenantId, tenantId)]
    if (f.endpointId) conds.push(eq(webhookDeliveries.endpointId, f.endpointId))
    if (f.status?.length) conds.push(inArray(webhookDeliveries.status, f.status))
    if (f.runId) conds.push(eq(webhookDeliveries.runId, f.runId))
    if (f.eventType) conds.push(eq(webhookDeliveries.eventType, f.eventType))
    return newestFirst(this.db, webhookDeliveries, conds, f.cursor, f.limit)
  }

  listAttempts(deliveryId: string, limit = 100): Promise<WebhookAttemptRow[]> {
    return this.db.select().from(webhookAttempts).where(eq(webhookAttempts.deliveryId, deliveryId)).orderBy(asc(webhookAttempts.id)).limit(limit)
  }

  async redeliver(id: string, now: number): Promise<WebhookDeliveryRow | undefined> {
    const [d] = await this.db.update(webhookDeliveries).set({ status: 'pending', cycleAttempts: 0, nextAttemptAt: now, completedAt: null, updatedAt: now })
      .where(eq(webhookDeliveries.id, id)).returning()
    return d
  }
}
