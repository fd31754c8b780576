import { and, asc, eq, sql } from 'drizzle-orm'
import type { Db } from './db.ts'
import { newestFirst, type Page } from './page.ts'
import type { ReadCache, SharedReadCache } from './read-cache.ts'
import { connections, workflows } from './schema.ts'

export type ConnectionRow = typeof connections.$inferSelect
export type WorkflowRow = typeof workflows.$inferSelect

/** Connections (an upstream and its sealed credentials) and the workflows that run on them; read on every request and tick, so cached. */
export class CatalogStore {
  private readonly connectionCache: ReadCache<ConnectionRow>
  private readonly workflowCache: ReadCache<WorkflowRow>

  constructor(private readonly db: Db, private readonly cache: SharedReadCache) {
    this.connectionCache = cache.syncedCache()
    this.workflowCache = cache.syncedCache()
  }

  // connections ------------------------------------------------------------
  async createConnection(row: typeof connections.$inferInsert): Promise<ConnectionRow> {
    const [c] = await this.db.insert(connections).values(row).returning()
    return c!
  }

  async getConnection(tenantId: string, id: string): Promise<ConnectionRow | undefined> {
    return this.cache.read(this.connectionCache, `${tenantId}:${id}`, async () =>
      (await this.db.select().from(connections).where(and(eq(connections.id, id), eq(connections.tenantId, tenantId))))[0])
  }

  /** A connection by id alone (inbound webhooks name it in their path), uncached. */
  async getConnectionById(id: string): Promise<ConnectionRow | undefined> {
    const [c] = await this.db.select().from(connections).where(eq(connections.id, id))
    return c
  }

  async listConnections(tenantId: string, cursor: [number, string] | null, limit: number): Promise<Page<ConnectionRow>> {
    return newestFirst(this.db, connections, [eq(connections.tenantId, tenantId)], cursor, limit)
  }

  async updateConnection(tenantId: string, id: string, patch: Partial<typeof connections.$inferInsert>): Promise<ConnectionRow | undefined> {
    const [c] = await this.cache.changing(() => this.connectionCache.delete(`${tenantId}:${id}`),
      this.db.update(connections).set(patch).where(and(eq(connections.id, id), eq(connections.tenantId, tenantId))).returning())
    return c
  }

  async deleteConnection(tenantId: string, id: string): Promise<boolean> {
    const rows = await this.cache.changing(() => this.connectionCache.delete(`${tenantId}:${id}`),
      this.db.delete(connections).where(and(eq(connections.id, id), eq(connections.tenantId, tenantId))).returning({ id: connections.id }))
    return rows.length > 0
  }

  async countWorkflowsOfConnection(connectionId: string): Promise<number> {
    const [r] = await this.db.select({ n: sql<number>`count(*)` }).from(workflows).where(eq(workflows.connectionId, connectionId))
    return Number(r?.n ?? 0)
  }

  // workflows --------------------------------------------------------------
  async createWorkflow(row: typeof workflows.$inferInsert): Promise<WorkflowRow> {
    const [w] = await this.db.insert(workflows).values(row).returning()
    return w!
  }

  async getWorkflow(tenantId: string, id: string): Promise<WorkflowRow | undefined> {
    return this.cache.read(this.workflowCache, `${tenantId}:${id}`, async () =>
      (await this.db.select().from(workflows).where(and(eq(workflows.id, id), eq(workflows.tenantId, tenantId))))[0])
  }

  /** The oldest workflow of a connection with this upstream workflow id (the proxy's: one configured by hand wins over one it made). */
  async oldestWorkflowOfUpstream(connection: Pick<ConnectionRow, 'id' | 'tenantId'>, upstreamWorkflowId: string): Promise<WorkflowRow | undefined> {
    const [row] = await this.db.select().from(workflows)
      .where(and(eq(workflows.tenantId, connection.tenantId), eq(workflows.connectionId, connection.id), eq(workflows.upstreamWorkflowId, upstreamWorkflowId)))
      .orderBy(asc(workflows.createdAt), asc(workflows.id)).limit(1)
    return row
  }

  async listWorkflows(tenantId: string, cursor: [number, string] | null, limit: number): Promise<Page<WorkflowRow>> {
    return newestFirst(this.db, workflows, [eq(workflows.tenantId, tenantId)], cursor, limit)
  }

  async updateWorkflow(tenantId: string, id: string, patch: Partial<typeof workflows.$inferInsert>): Promise<WorkflowRow | undefined> {
    const [w] = await this.cache.changing(() => this.workflowCache.delete(`${tenantId}:${id}`),
      this.db.update(workflows).set(patch).where(and(eq(workflows.id, id), eq(workflows.tenantId, tenantId))).returning())
    return w
  }

  async deleteWorkflow(tenantId: string, id: string): Promise<boolean> {
    const rows = await this.cache.changing(() => this.workflowCache.delete(`${tenantId}:${id}`),
      this.db.delete(workflows).where(and(eq(workflows.id, id), eq(workflows.tenantId, tenantId))).returning({ id: workflows.id }))
    return rows.length > 0
  }
}
