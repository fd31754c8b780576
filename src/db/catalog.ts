import { and, asc, eq, sql } from 'drizzle-orm'
import type { SQLiteColumn, SQLiteTable } from 'drizzle-orm/sqlite-core'
import type { Db } from './db.ts'
import { newestFirst, type Page } from './page.ts'
import type { ReadCache, SharedReadCache } from './read-cache.ts'
import { connections, workflows } from './schema.ts'

export type ConnectionRow = typeof connections.$inferSelect
export type WorkflowRow = typeof workflows.$inferSelect

/** A table whose rows a tenant owns by id, listed newest first. */
type TenantTable = SQLiteTable & { id: SQLiteColumn; tenantId: SQLiteColumn; createdAt: SQLiteColumn }

/**
 * Get, list, update and delete of one tenant's rows by id, the reads cached by `tenant:id`
 * (emptied when another process announces a change), each change dropping its entry.
 */
class TenantRows<T extends TenantTable> {
  private readonly rows: ReadCache<T['$inferSelect']>

  constructor(private readonly db: Db, private readonly cache: SharedReadCache, private readonly table: T) {
    this.rows = cache.syncedCache()
  }

  private byId(tenantId: string, id: string) {
    return and(eq(this.table.id, id), eq(this.table.tenantId, tenantId))
  }

  get(tenantId: string, id: string): Promise<T['$inferSelect'] | undefined> {
    return this.cache.read(this.rows, `${tenantId}:${id}`, async () =>
      (await this.db.select().from(this.table as SQLiteTable).where(this.byId(tenantId, id)) as T['$inferSelect'][])[0])
  }

  list(tenantId: string, cursor: [number, string] | null, limit: number): Promise<Page<T['$inferSelect']>> {
    return newestFirst(this.db, this.table, [eq(this.table.tenantId, tenantId)], cursor, limit)
  }

  async update(tenantId: string, id: string, patch: Partial<T['$inferInsert']>): Promise<T['$inferSelect'] | undefined> {
    const [row] = await this.cache.changing(() => this.rows.delete(`${tenantId}:${id}`),
      this.db.update(this.table as SQLiteTable).set(patch).where(this.byId(tenantId, id)).returning())
    return row as T['$inferSelect'] | undefined
  }

  async delete(tenantId: string, id: string): Promise<boolean> {
    const rows = await this.cache.changing(() => this.rows.delete(`${tenantId}:${id}`),
      this.db.delete(this.table as SQLiteTable).where(this.byId(tenantId, id)).returning({ id: this.table.id }))
    return rows.length > 0
  }
}

/** Connections (an upstream and its sealed credentials) and the workflows that run on them; read on every request and tick, so cached. */
export class CatalogStore {
  private readonly connections: TenantRows<typeof connections>
  private readonly workflows: TenantRows<typeof workflows>

  constructor(private readonly db: Db, cache: SharedReadCache) {
    this.connections = new TenantRows(db, cache, connections)
    this.workflows = new TenantRows(db, cache, workflows)
  }

  // connections ------------------------------------------------------------
  async createConnection(row: typeof connections.$inferInsert): Promise<ConnectionRow> {
    const [c] = await this.db.insert(connections).values(row).returning()
    return c!
  }

  async getConnection(tenantId: string, id: string): Promise<ConnectionRow | undefined> { return this.connections.get(tenantId, id) }

  /** A connection by id alone (inbound webhooks name it in their path), uncached. */
  async getConnectionById(id: string): Promise<ConnectionRow | undefined> {
    const [c] = await this.db.select().from(connections).where(eq(connections.id, id))
    return c
  }

  async listConnections(tenantId: string, cursor: [number, string] | null, limit: number): Promise<Page<ConnectionRow>> { return this.connections.list(tenantId, cursor, limit) }

  async updateConnection(tenantId: string, id: string, patch: Partial<typeof connections.$inferInsert>): Promise<ConnectionRow | undefined> { return this.connections.update(tenantId, id, patch) }

  async deleteConnection(tenantId: string, id: string): Promise<boolean> { return this.connections.delete(tenantId, id) }

  async countWorkflowsOfConnection(connectionId: string): Promise<number> {
    const [r] = await this.db.select({ n: sql<number>`count(*)` }).from(workflows).where(eq(workflows.connectionId, connectionId))
    return Number(r?.n ?? 0)
  }

  // workflows --------------------------------------------------------------
  async createWorkflow(row: typeof workflows.$inferInsert): Promise<WorkflowRow> {
    const [w] = await this.db.insert(workflows).values(row).returning()
    return w!
  }

  async getWorkflow(tenantId: string, id: string): Promise<WorkflowRow | undefined> { return this.workflows.get(tenantId, id) }

  /** The oldest workflow of a connection with this upstream workflow id (the proxy's: one configured by hand wins over one it made). */
  async oldestWorkflowOfUpstream(connection: Pick<ConnectionRow, 'id' | 'tenantId'>, upstreamWorkflowId: string): Promise<WorkflowRow | undefined> {
    const [row] = await this.db.select().from(workflows)
      .where(and(eq(workflows.tenantId, connection.tenantId), eq(workflows.connectionId, connection.id), eq(workflows.upstreamWorkflowId, upstreamWorkflowId)))
      .orderBy(asc(workflows.createdAt), asc(workflows.id)).limit(1)
    return row
  }

  async listWorkflows(tenantId: string, cursor: [number, string] | null, limit: number): Promise<Page<WorkflowRow>> { return this.workflows.list(tenantId, cursor, limit) }

  async updateWorkflow(tenantId: string, id: string, patch: Partial<typeof workflows.$inferInsert>): Promise<WorkflowRow | undefined> { return this.workflows.update(tenantId, id, patch) }

  async deleteWorkflow(tenantId: string, id: string): Promise<boolean> { return this.workflows.delete(tenantId, id) }
}
