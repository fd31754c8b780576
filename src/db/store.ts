import type { BatchItem } from 'drizzle-orm/batch'
import { and, asc, desc, eq, getTableColumns, gt, gte, inArray, isNull, lt, or, sql, type SQL } from 'drizzle-orm'
import type { LibSQLDatabase } from 'drizzle-orm/libsql'
import type { SQLiteColumn, SQLiteTable } from 'drizzle-orm/sqlite-core'
import type { NewEvent, RunEvent, RunStatus } from '../core/domain.ts'
import { fromBase64Url, toBase64Url } from '../core/crypto.ts'
import { WriteConflictError } from '../core/ports.ts'
import type { RunPatch, RunRecord } from '../core/run.ts'
import * as schema from './schema.ts'
import { apiKeys, connections, events, idempotencyKeys, runs, settings, tenants, tokenRevocations, workflows } from './schema.ts'
import { migrate } from './migrate.ts'

export type Db = LibSQLDatabase<typeof schema>

export type TenantRow = typeof tenants.$inferSelect
export type ApiKeyRow = typeof apiKeys.$inferSelect
/** A tenant's token revocations in force: a not-before time (0: none) and revoked token ids. */
export interface TokenRevocations { notBefore: number; ids: ReadonlySet<string> }
export type ConnectionRow = typeof connections.$inferSelect
export type WorkflowRow = typeof workflows.$inferSelect
export type RunRow = typeof runs.$inferSelect
export type EventRow = typeof events.$inferSelect
export type { RunPatch }

/** Compiles only while A and B are assignable both ways. */
type SameShape<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false
// The core declares the run it works on (src/core/run.ts); this fails to compile when the table and it drift apart.
const runShapeMatches: SameShape<RunRow, RunRecord> = true
void runShapeMatches

export interface Page<T> { items: T[]; nextCursor: string | null }

/** A write as rows and a conditional run update, so several can share one batch. */
export interface PreparedWrite<T> {
  /** The run it appends to, if any (names the loser of a seq race). */
  runId?: string
  /** Run rows to insert (complete rows): a batch inserts those of all its writes in one statement, first. */
  runs?: RunRow[]
  /** A change of an existing run, applied only if its last_seq is still the one read. */
  update?: RunUpdate
  /** Event rows to append: a batch inserts those of all its writes in one statement. */
  events: (typeof events.$inferInsert)[]
  /** The result, given whether `update` matched its run, and the ids of `events` in the same order. */
  finish(updated: boolean, eventIds: number[]): T
}

/**
 * Set the defined columns of `set` on run `id` if its last_seq is still `lastSeq`. A batch
 * applies the updates of the same columns in one statement (see Store.writeBatch).
 */
export interface RunUpdate {
  id: string
  lastSeq: number
  set: Partial<RunRow>
  /** The lease's fencing token the writer holds: the update applies only while the run still carries it. */
  fence?: number
}

/** Event rows per insert statement (8 parameters each, well under SQLite's limit). */
const EVENT_INSERT_CHUNK = 500
/** Run rows per insert statement (30 parameters each). */
const RUN_INSERT_CHUNK = 100
/** How long a run row or history page read stays cached (see Store.runCache). */
const RUN_CACHE_MS = 1_000
/** History pages longer than this are not cached. */
const RUN_CACHE_MAX_EVENTS = 100
/** Every column of a run row, so a row built here has the shape a read returns (null where unset). */
const RUN_KEYS = Object.keys(getTableColumns(runs)) as (keyof RunRow)[]

/** Parameters per batched run update statement (SQLite allows 32,766). */
const UPDATE_PARAMS_MAX = 10_000
const RUN_COLUMNS = getTableColumns(runs) as Record<string, { name: string; mapToDriverValue(v: unknown): unknown }>
/** Plain column defaults (counters, the fencing token), for rows built without reading them back. */
const RUN_DEFAULTS = Object.fromEntries(Object.entries(getTableColumns(runs)).map(([k, c]) => [k, typeof c.default === 'number' ? c.default : undefined])) as Record<string, unknown>

/** Thrown when an append races another writer of the same run (seq already taken). */
export class SeqConflictError extends WriteConflictError {
  constructor(runId: string) { super(`events of run ${runId} were appended concurrently`) }
}

export function encodeCursor(createdAt: number, id: string): string {
  return toBase64Url(new TextEncoder().encode(JSON.stringify([createdAt, id])))
}

export function decodeCursor(cursor: string): [number, string] | null {
  try {
    const v = JSON.parse(new TextDecoder().decode(fromBase64Url(cursor)))
    return Array.isArray(v) && typeof v[0] === 'number' && typeof v[1] === 'string' ? [v[0], v[1]] : null
  } catch {
    return null
  }
}

/** Newest-first keyset pagination over (created_at, id). */
export function keyset(table: { createdAt: any; id: any }, cursor: [number, string] | null): SQL | undefined {
  if (!cursor) return undefined
  return or(lt(table.createdAt, cursor[0]), and(eq(table.createdAt, cursor[0]), lt(table.id, cursor[1])))
}

/** A page of `limit` rows from `limit + 1` read, with the cursor of the next one if there is more. */
export function page<T extends { createdAt: number; id: string }>(rows: T[], limit: number): Page<T> {
  const items = rows.slice(0, limit)
  const last = items[items.length - 1]
  return { items, nextCursor: rows.length > limit && last ? encodeCursor(last.createdAt, last.id) : null }
}

/**
 * A page of `table`'s rows that match `where`, newest first (created_at, then id), after
 * `cursor`: the order the keyset cursor is made for.
 */
export async function newestFirst<T extends SQLiteTable & { createdAt: SQLiteColumn; id: SQLiteColumn }>(
  db: Db, table: T, where: (SQL | undefined)[], cursor: [number, string] | null, limit: number,
): Promise<Page<T['$inferSelect'] & { createdAt: number; id: string }>> {
  const rows = await db.select().from(table as SQLiteTable).where(and(...where, keyset(table, cursor))).orderBy(desc(table.createdAt), desc(table.id)).limit(limit + 1)
  return page(rows as (T['$inferSelect'] & { createdAt: number; id: string })[], limit)
}

/** The wire form of an event. */
export function toRunEvent(row: EventRow, tags: string[]): RunEvent {
  return {
    id: row.id, run_id: row.runId, seq: row.seq, type: row.type as RunEvent['type'], at: new Date(row.createdAt).toISOString(),
    workflow_id: row.workflowId, status: row.status as RunStatus, tags, data: row.data,
  }
}

export interface RunFilter {
  workflowIds?: string[]
  status?: RunStatus[]
  tag?: string
  /** A run id, an upstream id or a tag, matched exactly. */
  search?: string
  /** Created at or after / before (ms epoch). */
  createdAfter?: number
  createdBefore?: number
  cursor?: [number, string] | null
  limit: number
}

export interface FeedFilter {
  runIds?: string[]
  workflowIds?: string[]
  statuses?: RunStatus[]
  tags?: string[]
}

/** Whether a feed event passes a subscriber's filter (workflow, status, any of the tags). */
export function matchesFeedFilter(event: Pick<RunEvent, 'run_id' | 'workflow_id' | 'status' | 'tags'>, f: FeedFilter): boolean {
  if (f.runIds?.length && !f.runIds.includes(event.run_id)) return false
  if (f.workflowIds?.length && !f.workflowIds.includes(event.workflow_id)) return false
  if (f.statuses?.length && !f.statuses.includes(event.status)) return false
  if (f.tags?.length && !f.tags.some((t) => event.tags.includes(t))) return false
  return true
}

/**
 * Rows kept by key for `ttlMs` (from when they were set); the least recently used go first past
 * `max`. Hand-made on purpose: lru-cache does the same in 18 KiB of the Worker bundle, which
 * never uses this cache, and took it past its budget.
 */
class ReadCache<T> {
  private readonly rows = new Map<string, { row: T; at: number }>()
  constructor(private readonly ttlMs: number, private readonly max = 10_000) {}

  get(key: string): T | undefined {
    const hit = this.rows.get(key)
    if (!hit) return undefined
    if (Date.now() - hit.at > this.ttlMs) { this.rows.delete(key); return undefined }
    // Map order is insertion order: moving a hit to the end makes the first key the least recently used.
    this.rows.delete(key)
    this.rows.set(key, hit)
    return hit.row
  }

  set(key: string, row: T): void {
    this.rows.delete(key)
    if (this.rows.size >= this.max) this.rows.delete(this.rows.keys().next().value!)
    this.rows.set(key, { row, at: Date.now() })
  }

  delete(key: string): void { this.rows.delete(key) }

  clear(): void { this.rows.clear() }

  /** Drop the rows `pred` picks. */
  deleteWhere(pred: (row: T) => boolean): void {
    for (const [k, v] of this.rows) if (pred(v.row)) this.rows.delete(k)
  }
}

/**
 * Run updates as statements: those setting the same columns share one
 * `update … from (values (id, seq read, new values…), …) … returning id`, each row matched by
 * id and by the seq it was read at, so a run whose seq moved is left alone (and not returned).
 * Runs named twice (not from the ledger, which writes a run once per batch) get a statement
 * each, in order.
 */
function runUpdates(updates: RunUpdate[]): { sql: string; args: unknown[] }[] {
  const shapes = new Map<string, { cols: string[]; list: RunUpdate[] }>()
  const seen = new Set<string>()
  let unique = true
  for (const u of updates) {
    if (seen.has(u.id)) unique = false
    seen.add(u.id)
  }
  updates.forEach((u, i) => {
    const cols = Object.keys(u.set).filter((k) => (u.set as Record<string, unknown>)[k] !== undefined)
    const key = unique ? cols.join(',') : String(i)
    let shape = shapes.get(key)
    if (!shape) shapes.set(key, (shape = { cols, list: [] }))
    shape.list.push(u)
  })
  const out: { sql: string; args: unknown[] }[] = []
  for (const { cols, list } of shapes.values()) {
    const columns = cols.map((k) => RUN_COLUMNS[k]!)
    const assign = columns.map((c, j) => `"${c.name}" = v.column${j + 4}`).join(', ')
    const tuple = `(${Array(cols.length + 3).fill('?').join(', ')})`
    const per = Math.max(1, Math.floor(UPDATE_PARAMS_MAX / (cols.length + 3)))
    for (let i = 0; i < list.length; i += per) {
      const chunk = list.slice(i, i + per)
      const args: unknown[] = []
      for (const u of chunk) {
        args.push(u.id, u.lastSeq, u.fence ?? null)
        for (let j = 0; j < cols.length; j++) {
          const v = (u.set as Record<string, unknown>)[cols[j]!]
          args.push(v === null ? null : columns[j]!.mapToDriverValue(v))
        }
      }
      out.push({
        sql: `update "runs" set ${assign} from (values ${Array(chunk.length).fill(tuple).join(', ')}) as v where "runs"."id" = v.column1 and "runs"."last_seq" = v.column2 and (v.column3 is null or "runs"."lease_token" = v.column3) returning "runs"."id"`,
        args,
      })
    }
  }
  return out
}

const EVENT_COLUMNS = ['tenantId', 'runId', 'workflowId', 'seq', 'type', 'status', 'data', 'createdAt'] as const
const EVENT_INSERT_HEAD = `insert into "events" (${EVENT_COLUMNS.map((k) => `"${events[k].name}"`).join(', ')}) values `
const EVENT_TUPLE = `(${EVENT_COLUMNS.map(() => '?').join(', ')})`

/**
 * A multi-row insert of event rows returning (id, run_id, seq) for each. A row goes in only if
 * its run's last_seq already covers its seq, that is if the run update of the same write
 * matched: a write refused by its condition (seq moved, or a stale lease's fence) appends
 * nothing, even where its seqs are still free.
 */
function eventInsert(rows: (typeof events.$inferInsert)[]): { sql: string; args: unknown[] } {
  const args: unknown[] = []
  for (const r of rows) args.push(r.tenantId, r.runId, r.workflowId, r.seq, r.type, r.status, JSON.stringify(r.data), r.createdAt)
  return {
    sql: `${EVENT_INSERT_HEAD.replace(/ values $/, ' ')}select * from (values ${Array(rows.length).fill(EVENT_TUPLE).join(', ')}) as v `
      + `where exists (select 1 from "runs" where "runs"."id" = v.column2 and "runs"."last_seq" >= v.column4) returning "id", "run_id", "seq"`,
    args,
  }
}

/** The settings row counting changes of cached rows, shared by the processes on one database. */
const CACHE_EPOCH = 'cache_epoch'

/** An unfinished run whose lease is free: never taken, released, or lapsed before `now`. */
const claimable = (now: number | ReturnType<typeof sql.placeholder>) =>
  and(isNull(runs.finishedAt), or(isNull(runs.leaseExpiresAt), lt(runs.leaseExpiresAt, now)))

/** All of runrelay's persistence, over any libSQL client (embedded file, or HTTP on Workers). */
export class Store {
  private caches?: { keys: ReadCache<ApiKeyRow>; workflows: ReadCache<WorkflowRow>; connections: ReadCache<ConnectionRow>; revocations: ReadCache<TokenRevocations> }

  constructor(readonly db: Db) {}

  /**
   * Keep API keys (by hash), workflows and connections (by id) read through this store for up
   * to `ttlMs`: they are read on every request and every tick. A change made through this
   * store (revoking a key, PATCH or DELETE of a workflow or connection) drops the entry at
   * once, so it holds from the next request or tick. Each such change also bumps a shared
   * counter in the database (`cache_epoch`), and `syncReadCache` (called every fraction of a
   * second by the runtime) empties this cache when another process bumped it: a key revoked
   * on one process stops working on the others within that period, not `ttlMs`. For the
   * local runtimes (Node, Deno, Bun); Workers isolates do not use it.
   */
  enableReadCache(ttlMs: number): void {
    this.caches = ttlMs > 0 ? { keys: new ReadCache(ttlMs), workflows: new ReadCache(ttlMs), connections: new ReadCache(ttlMs), revocations: new ReadCache(ttlMs) } : undefined
    this.runCache = ttlMs > 0 ? { rows: new ReadCache(RUN_CACHE_MS, 1_024), history: new ReadCache(RUN_CACHE_MS, 256) } : undefined
  }

  /**
   * With the read cache on: run rows read by id and short history pages, for about a second,
   * so N subscribers connecting to one run cost one run read and one history read, not N
   * each. Every write of a run through this store (writeBatch: creates, ticks, commands)
   * drops the run's entries before and after it is written, and a read that overlapped a
   * write does not fill them: an entry never predates a write made here, so a history page
   * from it holds every event published before it was taken (replay-then-live stays exact).
   * Rows deleted by retention may be seen for up to a second.
   */
  private runCache?: { rows: ReadCache<RunRow>; history: ReadCache<RunEvent[]> }
  private runGeneration = 0
  /** Cached history pages per run, to drop them with the run. */
  private readonly historyKeys = new Map<string, Set<string>>()

  private invalidateRuns(runIds: Iterable<string>): void {
    if (!this.runCache) return
    this.runGeneration++
    for (const id of runIds) {
      this.runCache.rows.delete(id)
      const keys = this.historyKeys.get(id)
      if (keys) { for (const k of keys) this.runCache.history.delete(k); this.historyKeys.delete(id) }
    }
  }

  migrate(): Promise<number> { return migrate(this.db) }

  // settings ---------------------------------------------------------------
  async getSetting(key: string): Promise<string | undefined> {
    const [row] = await this.db.select().from(settings).where(eq(settings.key, key))
    return row?.value
  }

  // tenants and keys -------------------------------------------------------
  async createTenant(row: typeof tenants.$inferInsert): Promise<TenantRow> {
    const [t] = await this.db.insert(tenants).values(row).returning()
    return t!
  }

  async getTenant(id: string): Promise<TenantRow | undefined> {
    const [t] = await this.db.select().from(tenants).where(eq(tenants.id, id))
    return t
  }

  async listTenants(cursor: [number, string] | null, limit: number): Promise<Page<TenantRow>> {
    return newestFirst(this.db, tenants, [], cursor, limit)
  }

  async createApiKey(row: typeof apiKeys.$inferInsert): Promise<ApiKeyRow> {
    const [k] = await this.db.insert(apiKeys).values(row).returning()
    return k!
  }

  /** Insert a key unless one with its id or hash exists (concurrent starts bootstrapping one root key); whether it was inserted. */
  async ensureApiKey(row: typeof apiKeys.$inferInsert): Promise<boolean> {
    return (await this.db.insert(apiKeys).values(row).onConflictDoNothing().returning({ id: apiKeys.id })).length > 0
  }

  async findApiKeyByHash(hash: string): Promise<ApiKeyRow | undefined> {
    return this.cachedRead(this.caches?.keys, hash, async () => (await this.db.select().from(apiKeys).where(eq(apiKeys.hash, hash)))[0])
  }

  async hasRootKey(): Promise<boolean> {
    const [k] = await this.db.select({ id: apiKeys.id }).from(apiKeys).where(isNull(apiKeys.tenantId)).limit(1)
    return !!k
  }

  async listApiKeys(tenantId: string, cursor: [number, string] | null, limit: number): Promise<Page<ApiKeyRow>> {
    return newestFirst(this.db, apiKeys, [eq(apiKeys.tenantId, tenantId)], cursor, limit)
  }

  async revokeApiKey(tenantId: string, id: string, now: number): Promise<ApiKeyRow | undefined> {
    this.generation++
    this.caches?.keys.deleteWhere((k) => k.id === id)
    const [k] = await this.announced(this.db.update(apiKeys).set({ revokedAt: now })
      .where(and(eq(apiKeys.id, id), eq(apiKeys.tenantId, tenantId), isNull(apiKeys.revokedAt))).returning())
    // Again once written: a lookup that read the row before the update must not stay cached.
    this.generation++
    this.caches?.keys.deleteWhere((k) => k.id === id)
    return k
  }

  /** A key by id (subscriber tokens name the key that minted them); cached like findApiKeyByHash, and dropped with it on revocation. */
  async findApiKeyById(id: string): Promise<ApiKeyRow | undefined> {
    return this.cachedRead(this.caches?.keys, `id:${id}`, async () => (await this.db.select().from(apiKeys).where(eq(apiKeys.id, id)))[0])
  }

  /** The tenant's token revocations still in force at `now` (one small read, cached and synced across processes like keys). */
  async tokenRevocations(tenantId: string, now: number): Promise<TokenRevocations> {
    return (await this.cachedRead(this.caches?.revocations, tenantId, async () => {
      const rows = await this.db.select({ tokenId: tokenRevocations.tokenId, before: tokenRevocations.before }).from(tokenRevocations)
        .where(and(eq(tokenRevocations.tenantId, tenantId), gt(tokenRevocations.expiresAt, now)))
      let notBefore = 0
      const ids = new Set<string>()
      for (const r of rows) if (r.tokenId === '*') notBefore = r.before; else ids.add(r.tokenId)
      return { notBefore, ids }
    }))!
  }

  /**
   * Revoke one token (`tokenId`, its jti) or, with `'*'`, every token of the tenant minted before
   * `before` (a later `before` replaces an earlier one, an earlier one is ignored). Announced like
   * a key's revocation: every process refuses the tokens within its read-cache sync.
   */
  async revokeTokens(tenantId: string, tokenId: string, before: number, expiresAt: number): Promise<void> {
    this.generation++
    this.caches?.revocations.delete(tenantId)
    await this.announced(this.db.insert(tokenRevocations).values({ tenantId, tokenId, before, expiresAt })
      .onConflictDoUpdate({
        target: [tokenRevocations.tenantId, tokenRevocations.tokenId],
        set: { before: sql`max(${tokenRevocations.before}, excluded.before)`, expiresAt: sql`max(${tokenRevocations.expiresAt}, excluded.expires_at)` },
      }))
    this.generation++
    this.caches?.revocations.delete(tenantId)
  }

  async touchApiKey(id: string, now: number): Promise<void> {
    await this.db.update(apiKeys).set({ lastUsedAt: now }).where(eq(apiKeys.id, id))
  }

  // connections ------------------------------------------------------------
  async createConnection(row: typeof connections.$inferInsert): Promise<ConnectionRow> {
    const [c] = await this.db.insert(connections).values(row).returning()
    return c!
  }

  async getConnection(tenantId: string, id: string): Promise<ConnectionRow | undefined> {
    return this.cachedRead(this.caches?.connections, `${tenantId}:${id}`, async () =>
      (await this.db.select().from(connections).where(and(eq(connections.id, id), eq(connections.tenantId, tenantId))))[0])
  }

  async listConnections(tenantId: string, cursor: [number, string] | null, limit: number): Promise<Page<ConnectionRow>> {
    return newestFirst(this.db, connections, [eq(connections.tenantId, tenantId)], cursor, limit)
  }

  async updateConnection(tenantId: string, id: string, patch: Partial<typeof connections.$inferInsert>): Promise<ConnectionRow | undefined> {
    const [c] = await this.changing('connections', tenantId, id, this.db.update(connections).set(patch).where(and(eq(connections.id, id), eq(connections.tenantId, tenantId))).returning())
    return c
  }

  async deleteConnection(tenantId: string, id: string): Promise<boolean> {
    const rows = await this.changing('connections', tenantId, id, this.db.delete(connections).where(and(eq(connections.id, id), eq(connections.tenantId, tenantId))).returning({ id: connections.id }))
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
    return this.cachedRead(this.caches?.workflows, `${tenantId}:${id}`, async () =>
      (await this.db.select().from(workflows).where(and(eq(workflows.id, id), eq(workflows.tenantId, tenantId))))[0])
  }

  async listWorkflows(tenantId: string, cursor: [number, string] | null, limit: number): Promise<Page<WorkflowRow>> {
    return newestFirst(this.db, workflows, [eq(workflows.tenantId, tenantId)], cursor, limit)
  }

  async updateWorkflow(tenantId: string, id: string, patch: Partial<typeof workflows.$inferInsert>): Promise<WorkflowRow | undefined> {
    const [w] = await this.changing('workflows', tenantId, id, this.db.update(workflows).set(patch).where(and(eq(workflows.id, id), eq(workflows.tenantId, tenantId))).returning())
    return w
  }

  async deleteWorkflow(tenantId: string, id: string): Promise<boolean> {
    const rows = await this.changing('workflows', tenantId, id, this.db.delete(workflows).where(and(eq(workflows.id, id), eq(workflows.tenantId, tenantId))).returning({ id: workflows.id }))
    return rows.length > 0
  }

  /** Bumped by every change of a cached kind: a read that overlapped one does not fill the cache. */
  private generation = 0

  /** `key` from `cache`, else `read()`; the row read is cached unless a change went through meanwhile (it may predate it). */
  private async cachedRead<T>(cache: ReadCache<T> | undefined, key: string, read: () => Promise<T | undefined>): Promise<T | undefined> {
    const cached = cache?.get(key)
    if (cached) return cached
    const gen = this.generation
    const row = await read()
    if (row && gen === this.generation) cache?.set(key, row)
    return row
  }

  private invalidate(kind: 'workflows' | 'connections', tenantId: string, id: string): void {
    this.generation++
    this.caches?.[kind].delete(`${tenantId}:${id}`)
  }

  /** The shared change counter as this process last read it (undefined before the first sync). */
  private cacheEpoch?: string
  private cacheEpochQuery?: { all(): Promise<Array<{ value: string }>> }

  /**
   * Run a change of a cached row together with a bump of the shared change counter, in one
   * transaction, so the other processes' read caches hear of it (see enableReadCache): no
   * process can see the change without the bump, not even after a crash between the two.
   */
  private async announced<Q extends BatchItem<'sqlite'>>(change: Q): Promise<Q['_']['result']> {
    if (!this.caches) return await change
    const now = Date.now()
    const bump = this.db.insert(settings).values({ key: CACHE_EPOCH, value: '1', updatedAt: now })
      .onConflictDoUpdate({ target: settings.key, set: { value: sql`cast(${settings.value} as integer) + 1`, updatedAt: now } })
    const [result] = await this.db.batch([change, bump])
    return result
  }

  /**
   * Empty the read cache if another process changed a cached row since the last call: one
   * primary-key read. A read that overlapped the emptying does not fill the cache again.
   */
  async syncReadCache(): Promise<void> {
    if (!this.caches) return
    // Built once, like the tail's queries: every process runs it several times a second.
    this.cacheEpochQuery ??= this.db.select({ value: settings.value }).from(settings).where(eq(settings.key, CACHE_EPOCH)).prepare()
    const epoch = (await this.cacheEpochQuery.all())[0]?.value ?? '0'
    if (this.cacheEpoch !== undefined && epoch !== this.cacheEpoch) {
      this.generation++
      this.caches.keys.clear()
      this.caches.workflows.clear()
      this.caches.connections.clear()
      this.caches.revocations.clear()
    }
    this.cacheEpoch = epoch
  }

  /** Run a write of a cached row, its entry dropped before (no read fills it meanwhile) and after (nor one that overlapped), announced to the other processes. */
  private async changing<Q extends BatchItem<'sqlite'>>(kind: 'workflows' | 'connections', tenantId: string, id: string, write: Q): Promise<Q['_']['result']> {
    this.invalidate(kind, tenantId, id)
    const result = await this.announced(write)
    this.invalidate(kind, tenantId, id)
    return result
  }

  async getConnectionById(id: string): Promise<ConnectionRow | undefined> {
    const [c] = await this.db.select().from(connections).where(eq(connections.id, id))
    return c
  }

  /** The newest run of a connection (through its workflows) with this upstream id. */
  async findRunByUpstreamId(connection: Pick<ConnectionRow, 'id' | 'tenantId'>, upstreamId: string): Promise<RunRow | undefined> {
    const [r] = await this.db.select({ run: runs }).from(runs).innerJoin(workflows, eq(workflows.id, runs.workflowId))
      .where(and(eq(runs.tenantId, connection.tenantId), eq(workflows.connectionId, connection.id), eq(runs.upstreamId, upstreamId)))
      .orderBy(desc(runs.createdAt)).limit(1)
    return r?.run
  }

  async countActiveRunsOfWorkflow(workflowId: string): Promise<number> {
    const [r] = await this.db.select({ n: sql<number>`count(*)` }).from(runs).where(and(eq(runs.workflowId, workflowId), isNull(runs.finishedAt)))
    return Number(r?.n ?? 0)
  }

  /** Unfinished runs of one upstream workflow on a connection, whatever runrelay workflow started them (at most `limit`). */
  async activeRunIdsOfUpstreamWorkflow(connectionId: string, upstreamWorkflowId: string, limit = 20): Promise<string[]> {
    const rows = await this.db.select({ id: runs.id }).from(runs).innerJoin(workflows, eq(runs.workflowId, workflows.id))
      .where(and(eq(workflows.connectionId, connectionId), eq(workflows.upstreamWorkflowId, upstreamWorkflowId), isNull(runs.finishedAt)))
      .orderBy(asc(runs.createdAt), asc(runs.id)).limit(limit)
    return rows.map((r) => r.id)
  }

  // runs and events --------------------------------------------------------
  /** Insert a run together with its run.created event (seq 1), atomically. */
  async createRun(row: typeof runs.$inferInsert, created: NewEvent): Promise<{ run: RunRow; event: RunEvent }> {
    const [r] = await this.writeBatch([this.prepareCreateRun(row, created)])
    if (r!.error) throw r!.error
    return r!.value!
  }

  /** The statements of createRun, for a caller that commits several writes in one batch. */
  prepareCreateRun(row: typeof runs.$inferInsert, created: NewEvent): PreparedWrite<{ run: RunRow; event: RunEvent }> {
    // The row as it will read back, without reading it back: every column, null where unset.
    const full = {} as Record<string, unknown>
    for (const k of RUN_KEYS) full[k] = (row as Record<string, unknown>)[k] ?? RUN_DEFAULTS[k] ?? null
    full.lastSeq = 1
    const run = full as RunRow
    const ev = {
      tenantId: row.tenantId, runId: row.id, workflowId: row.workflowId, seq: 1, type: created.type,
      status: row.status, data: created.data, createdAt: row.createdAt,
    }
    return {
      runs: [run], events: [ev],
      finish: (_, [id]) => ({ run, event: toRunEvent({ ...ev, id: id! }, run.tags) }),
    }
  }

  /**
   * Run several prepared writes as one atomic batch (one transaction, one commit): group
   * commit. New runs go first (one multi-row insert), then the run updates (one statement
   * per set of changed columns), then all the events in one multi-row insert, so event ids
   * follow the order of the writes. Each write's result or error is its own, except that a
   * failing statement rolls back the whole batch and rejects.
   */
  async writeBatch<T>(writes: PreparedWrite<T>[]): Promise<Array<{ value?: T; error?: unknown }>> {
    // Statements go to the libSQL client as they are (sql + args): drizzle's builders cost
    // more than the writes here, and a batch's statements need no result mapping.
    const stmts: { sql: string; args: unknown[] }[] = []
    // New runs first, all in one multi-row insert (a write's statements only touch its own run).
    const runRows = writes.flatMap((w) => w.runs ?? [])
    for (let i = 0; i < runRows.length; i += RUN_INSERT_CHUNK) {
      const q = this.db.insert(runs).values(runRows.slice(i, i + RUN_INSERT_CHUNK)).toSQL()
      stmts.push({ sql: q.sql, args: q.params })
    }
    const firstUpdate = stmts.length
    for (const u of runUpdates(writes.flatMap((w) => (w.update ? [w.update] : [])))) stmts.push(u)
    const lastUpdate = stmts.length
    const rows = writes.flatMap((w) => w.events)
    for (let i = 0; i < rows.length; i += EVENT_INSERT_CHUNK) stmts.push(eventInsert(rows.slice(i, i + EVENT_INSERT_CHUNK)))
    let results: { rows: ArrayLike<unknown>[] }[]
    const touched = this.runCache ? writes.flatMap((w) => w.runId ?? w.runs?.map((r) => r.id) ?? []) : []
    this.invalidateRuns(touched)
    try {
      // 'write' begins IMMEDIATE: the write lock is taken (waiting out the busy timeout) before
      // anything is read, so a batch never has to upgrade a stale read under another process's writes.
      results = (await (this.db as unknown as { $client: { batch(s: unknown[], mode?: string): Promise<unknown[]> } }).$client.batch(stmts, 'write')) as typeof results
    } catch (err) {
      this.invalidateRuns(touched)
      // Only a lone write can tell whose statement failed: a seq already taken is a lost race.
      if (writes.length === 1 && /UNIQUE constraint failed/i.test(String((err as Error)?.message ?? err)) && writes[0]!.runId) throw new SeqConflictError(writes[0]!.runId)
      throw err
    }
    this.invalidateRuns(touched)
    // Runs whose update matched (RETURNING id), and each event's id by (run, seq).
    const updated = new Set<string>()
    for (let i = firstUpdate; i < lastUpdate; i++) for (const r of results[i]!.rows) updated.add(r[0] as string)
    const ids = new Map<string, number>()
    for (let i = lastUpdate; i < results.length; i++) for (const r of results[i]!.rows) ids.set(`${r[1] as string}:${Number(r[2])}`, Number(r[0]))
    return writes.map((w) => {
      try {
        return { value: w.finish(!!w.update && updated.has(w.update.id), w.events.map((e) => ids.get(`${e.runId}:${e.seq}`)!)) }
      } catch (error) {
        return { error }
      }
    })
  }
  async getRun(tenantId: string, id: string): Promise<RunRow | undefined> {
    const cache = this.runCache
    const hit = cache?.rows.get(id)
    if (hit) return hit.tenantId === tenantId ? hit : undefined
    const gen = this.runGeneration
    const [r] = await this.db.select().from(runs).where(and(eq(runs.id, id), eq(runs.tenantId, tenantId)))
    if (r && cache && gen === this.runGeneration) cache.rows.set(id, r)
    return r
  }

  /** How long a workflow's newest finished runs took (started → finished, ms): what adaptive polling learns from. */
  async workflowDurations(workflowId: string, limit: number): Promise<number[]> {
    const rows = await this.db.select({ started: runs.startedAt, finished: runs.finishedAt }).from(runs)
      .where(and(eq(runs.workflowId, workflowId), inArray(runs.status, ['completed', 'failed'])))
      .orderBy(desc(runs.createdAt)).limit(limit)
    return rows.flatMap((r) => (r.started !== null && r.finished !== null ? [r.finished - r.started] : []))
  }

  async getRunById(id: string): Promise<RunRow | undefined> {
    const [r] = await this.db.select().from(runs).where(eq(runs.id, id))
    return r
  }

  async listRuns(tenantId: string, f: RunFilter): Promise<Page<RunRow>> {
    const conds: (SQL | undefined)[] = [eq(runs.tenantId, tenantId)]
    if (f.workflowIds?.length) conds.push(inArray(runs.workflowId, f.workflowIds))
    if (f.status?.length) conds.push(inArray(runs.status, f.status))
    const hasTag = (tag: string) => sql`exists (select 1 from json_each(${runs.tags}) where json_each.value = ${tag})`
    if (f.tag) conds.push(hasTag(f.tag))
    if (f.search) conds.push(or(eq(runs.id, f.search), eq(runs.upstreamId, f.search), hasTag(f.search)))
    if (f.createdAfter !== undefined) conds.push(gte(runs.createdAt, f.createdAfter))
    if (f.createdBefore !== undefined) conds.push(lt(runs.createdAt, f.createdBefore))
    return newestFirst(this.db, runs, conds, f.cursor ?? null, f.limit)
  }

  /** Runs that are not finished: the ones a host must watch again after a restart. */
  async listUnfinishedRuns(limit = 10_000): Promise<RunRow[]> {
    return this.db.select().from(runs).where(isNull(runs.finishedAt)).orderBy(asc(runs.nextTickAt)).limit(limit)
  }

  /**
   * Apply a patch to a run and append its new events with the next seqs, in one atomic
   * batch. The update is conditional on the seq the caller read, so two writers can never
   * both append seq n+1: the loser gets SeqConflictError and nothing is written.
   */
  async applyRunChange(run: RunRow, patch: RunPatch, newEvents: NewEvent[], now: number, fence?: number): Promise<{ run: RunRow; events: RunEvent[] }> {
    const [r] = await this.writeBatch([this.prepareRunChange(run, patch, newEvents, now, fence)])
    if (r!.error) throw r!.error
    return r!.value!
  }

  /** The statements of applyRunChange, for a caller that commits several writes in one batch. */
  prepareRunChange(run: RunRow, patch: RunPatch, newEvents: NewEvent[], now: number, fence?: number): PreparedWrite<{ run: RunRow; events: RunEvent[] }> {
    const lastSeq = run.lastSeq + newEvents.length
    const set = { ...patch, lastSeq, updatedAt: now }
    // The update is conditional on the seq read (and the fence held): if it matches nothing, its
    // events are not inserted and finish fails (or the insert hits the unique (run, seq) index
    // and the batch rolls back).
    const update: RunUpdate = { id: run.id, lastSeq: run.lastSeq, set, fence }
    // Each event carries the status in force once it is applied: a status change moves it.
    let current = run.status
    const rows = newEvents.map((e, i) => {
      if (e.type === 'run.status_changed' && typeof e.data.to === 'string') current = e.data.to
      return { tenantId: run.tenantId, runId: run.id, workflowId: run.workflowId, seq: run.lastSeq + 1 + i, type: e.type, status: current, data: e.data, createdAt: now }
    })
    return {
      runId: run.id, update, events: rows,
      finish: (matched, ids) => {
        if (!matched) throw new SeqConflictError(run.id)
        // The row as written, without reading it back (undefined fields are left as they were, as in the update).
        const updated = { ...run } as Record<string, unknown>
        for (const [k, v] of Object.entries(set)) if (v !== undefined) updated[k] = v
        const tags = (updated as RunRow).tags
        return { run: updated as RunRow, events: rows.map((r, i) => toRunEvent({ ...r, id: ids[i]! }, tags)) }
      },
    }
  }

  /** A run's events after `afterSeq`, in seq order. */
  async listRunEvents(runId: string, afterSeq: number, limit: number): Promise<RunEvent[]> {
    const cache = this.runCache
    if (!cache) return this.readRunEvents(runId, afterSeq, limit)
    const key = `${runId}:${afterSeq}:${limit}`
    const hit = cache.history.get(key)
    // Shared by every reader: callers must not change the array or its events.
    if (hit) return hit
    const gen = this.runGeneration
    const page = await this.readRunEvents(runId, afterSeq, limit)
    if (gen === this.runGeneration && page.length <= RUN_CACHE_MAX_EVENTS) {
      cache.history.set(key, page)
      let keys = this.historyKeys.get(runId)
      if (!keys) {
        // Bounded: past 1,024 runs, drop every cached page with the index (never an index without its pages).
        if (this.historyKeys.size >= 1_024) { this.historyKeys.clear(); cache.history.clear() }
        this.historyKeys.set(runId, (keys = new Set()))
      }
      keys.add(key)
    }
    return page
  }

  private async readRunEvents(runId: string, afterSeq: number, limit: number): Promise<RunEvent[]> {
    const rows = await this.db.select({ e: events, tags: runs.tags }).from(events).innerJoin(runs, eq(runs.id, events.runId))
      .where(and(eq(events.runId, runId), gt(events.seq, afterSeq))).orderBy(asc(events.seq)).limit(limit)
    return rows.map((r) => toRunEvent(r.e, r.tags))
  }

  /** A tenant's events after feed position `afterId`, in id order, filtered. */
  async listFeedEvents(tenantId: string, afterId: number, filter: FeedFilter, limit: number): Promise<RunEvent[]> {
    const conds: (SQL | undefined)[] = [eq(events.tenantId, tenantId), gt(events.id, afterId)]
    if (filter.runIds?.length) conds.push(inArray(events.runId, filter.runIds))
    if (filter.workflowIds?.length) conds.push(inArray(events.workflowId, filter.workflowIds))
    if (filter.statuses?.length) conds.push(inArray(events.status, filter.statuses))
    if (filter.tags?.length) {
      conds.push(sql`exists (select 1 from json_each(${runs.tags}) where json_each.value in (${sql.join(filter.tags.map((t) => sql`${t}`), sql`, `)}))`)
    }
    const rows = await this.db.select({ e: events, tags: runs.tags }).from(events).innerJoin(runs, eq(runs.id, events.runId))
      .where(and(...conds)).orderBy(asc(events.id)).limit(limit)
    return rows.map((r) => toRunEvent(r.e, r.tags))
  }

  /** Every tenant's events after `afterId`, in id order: the cross-process tail (runtime/local/tail.ts) reads the table with it. */
  async listEventsAfter(afterId: number, limit: number): Promise<Array<{ tenantId: string; event: RunEvent }>> {
    const rows = await this.tailQueries().after.all({ afterId, limit })
    return rows.map((r) => ({ tenantId: r.e.tenantId, event: toRunEvent(r.e, r.tags) }))
  }

  /** The highest event id of any tenant (0 when there is none): one seek to the end of the id index. */
  async maxEventId(): Promise<number> {
    const [r] = await this.tailQueries().max.all()
    return Number(r?.id ?? 0)
  }

  private leaseProbeBuilt?: ReturnType<Store['buildLeaseProbe']>
  private leaseProbe() { return (this.leaseProbeBuilt ??= this.buildLeaseProbe()) }
  private buildLeaseProbe() {
    return this.db.select({ id: runs.id }).from(runs).where(claimable(sql.placeholder('now'))).limit(1).prepare()
  }

  // The event tail reads these every period of every process: built once, since building a
  // drizzle query costs more CPU than running it (measured on Bun and Node: ~300 µs against ~50–150 µs).
  private tailQueriesBuilt?: ReturnType<Store['buildTailQueries']>
  private tailQueries() { return (this.tailQueriesBuilt ??= this.buildTailQueries()) }
  private buildTailQueries() {
    return {
      after: this.db.select({ e: events, tags: runs.tags }).from(events).innerJoin(runs, eq(runs.id, events.runId))
        .where(gt(events.id, sql.placeholder('afterId'))).orderBy(asc(events.id)).limit(sql.placeholder('limit')).prepare(),
      max: this.db.select({ id: sql<number>`max(${events.id})` }).from(events).prepare(),
    }
  }

  /** Drop cached rows and history of runs another process has written (their events came through the tail), before they are published here. */
  forgetRuns(runIds: Iterable<string>): void { this.invalidateRuns(runIds) }

  async lastEventId(tenantId: string): Promise<number> {
    const [r] = await this.db.select({ id: sql<number>`max(${events.id})` }).from(events).where(eq(events.tenantId, tenantId))
    return Number(r?.id ?? 0)
  }

  // run leases -------------------------------------------------------------
  /**
   * Renew every lease `owner` holds on unfinished runs, in one statement. Returns the runs
   * still held and their tokens: a run held before and missing now (or with another token)
   * was taken over.
   */
  async renewLeases(owner: string, _now: number, expiresAt: number): Promise<Array<{ id: string; token: number }>> {
    // A lease that lapsed while the database was unreachable is renewed too if nobody claimed
    // it meanwhile: the row still carries our name and our token, so no other process has
    // written as its owner, and a claim and this renewal are both conditional single-row
    // writes (whichever commits first wins). A lapsed lease someone claimed has their name.
    const rows = await this.db.update(runs).set({ leaseExpiresAt: expiresAt })
      .where(and(eq(runs.leaseOwner, owner), isNull(runs.finishedAt))).returning({ id: runs.id, token: runs.leaseToken })
    return rows
  }

  /**
   * Take up to `limit` unfinished runs whose lease is free or lapsed, bumping each fencing
   * token (indexed by runs_lease). The condition is repeated on the row written, so two
   * processes claiming at once never both get a run.
   */
  async claimRuns(owner: string, now: number, expiresAt: number, limit: number): Promise<RunRow[]> {
    // Most passes find nothing to claim: a read says so without taking the database's write lock
    // (every process claims every second). A run freed just after the read is claimed next pass.
    const [any] = await this.leaseProbe().all({ now })
    if (!any) return []
    const candidates = this.db.select({ id: runs.id }).from(runs).where(claimable(now)).limit(limit)
    return this.db.update(runs).set({ leaseOwner: owner, leaseExpiresAt: expiresAt, leaseToken: sql`${runs.leaseToken} + 1` })
      .where(and(inArray(runs.id, candidates), claimable(now))).returning()
  }

  /** Give up every lease of `owner` at once (graceful stop): other processes claim the runs on their next pass. */
  async releaseLeases(owner: string): Promise<number> {
    const rows = await this.db.update(runs).set({ leaseOwner: null, leaseExpiresAt: null })
      .where(eq(runs.leaseOwner, owner)).returning({ id: runs.id })
    return rows.length
  }

  /** Give up one run's lease if `owner` still holds it with `token`. */
  async releaseLease(runId: string, owner: string, token: number): Promise<void> {
    await this.db.update(runs).set({ leaseOwner: null, leaseExpiresAt: null })
      .where(and(eq(runs.id, runId), eq(runs.leaseOwner, owner), eq(runs.leaseToken, token)))
  }

  /** Who holds a run's lease now. */
  async leaseOf(runId: string): Promise<{ owner: string | null; token: number; expiresAt: number | null } | undefined> {
    const [r] = await this.db.select({ owner: runs.leaseOwner, token: runs.leaseToken, expiresAt: runs.leaseExpiresAt }).from(runs).where(eq(runs.id, runId))
    return r
  }

  // shared request budgets ------------------------------------------------------
  /**
   * Reserve a token of a shared bucket in one statement (see SharedRateBudget): refill since
   * the last reservation (never backwards if clocks differ), cap at max(1, perSecond), take
   * one; returns the tokens left (negative: wait).
   */
  async reserveRateToken(key: string, perSecond: number, now: number): Promise<number> {
    const cap = Math.max(1, perSecond)
    const res = await (this.db as unknown as { $client: { execute(s: { sql: string; args: unknown[] }): Promise<{ rows: ArrayLike<unknown>[] }> } }).$client.execute({
      sql: 'insert into "rate_budgets" ("key", "tokens", "at") values (?1, ?2 - 1, ?3) on conflict ("key") do update set '
        + '"tokens" = min(?2, "tokens" + max(0, excluded."at" - "at") * ?4 / 1000.0) - 1, "at" = max("at", excluded."at") returning "tokens"',
      args: [key, cap, now, perSecond],
    })
    return Number((res.rows[0] as unknown as unknown[])[0])
  }

  // settings (claims) -------------------------------------------------------
  /** Insert a setting unless it exists; returns the value in force. */
  async claimSetting(key: string, value: string, now: number): Promise<string> {
    await this.db.insert(settings).values({ key, value, updatedAt: now }).onConflictDoNothing()
    return (await this.getSetting(key)) ?? value
  }

  /**
   * Node/Deno processes (leases) and a Workers deployment (Durable Objects, which know
   * nothing of leases) must not both watch the runs of one database: the first to start
   * claims the database for its kind in a settings row; the other kind refuses to start.
   */
  async claimDeployment(kind: 'local' | 'workers', now: number): Promise<void> {
    const owner = await this.claimSetting('deployment_kind', kind, now)
    if (owner === kind) return
    const name = (k: string) => (k === 'workers' ? 'Cloudflare Workers' : 'Node/Deno')
    throw new Error(`this database belongs to a ${name(owner)} deployment (settings row deployment_kind = ${owner}): runrelay on ${name(kind)} `
      + `refuses to start on it, as both would watch the same runs. Use another database, or delete that row once the other deployment is gone for good.`)
  }

  // idempotency ------------------------------------------------------------
  /**
   * Claim an idempotency key, reserving `resourceId` for what the request creates. Returns
   * `claimed: true` for the first request, else the stored row (possibly still without an
   * answer, while the first request runs or after it died). Only keys older than `ttlMs` are
   * forgotten (Stripe's 24 hours): a claim is never taken over by time, as a takeover that made
   * a new id could make a second run.
   */
  async claimIdempotencyKey(tenantId: string, key: string, requestHash: string, now: number, ttlMs: number, resourceId: string | null = null): Promise<{ claimed: boolean; row: typeof idempotencyKeys.$inferSelect }> {
    const where = and(eq(idempotencyKeys.tenantId, tenantId), eq(idempotencyKeys.key, key))
    await this.db.delete(idempotencyKeys).where(and(where, lt(idempotencyKeys.createdAt, now - ttlMs)))
    const [inserted] = await this.db.insert(idempotencyKeys).values({ tenantId, key, requestHash, resourceId, createdAt: now }).onConflictDoNothing().returning()
    if (inserted) return { claimed: true, row: inserted }
    const [row] = await this.db.select().from(idempotencyKeys).where(where)
    // Deleted between the insert and the read (expired at that very moment): claim again.
    if (!row) return this.claimIdempotencyKey(tenantId, key, requestHash, now, ttlMs, resourceId)
    return { claimed: false, row }
  }

  /** Store the answer given to a key's request (replayed to every retry). */
  async completeIdempotencyKey(tenantId: string, key: string, status: number, body: string): Promise<void> {
    await this.db.update(idempotencyKeys).set({ responseStatus: status, responseBody: body }).where(and(eq(idempotencyKeys.tenantId, tenantId), eq(idempotencyKeys.key, key)))
  }

  /** Forget a key whose request certainly created nothing (refused before any write), so a retry proceeds. */
  async releaseIdempotencyKey(tenantId: string, key: string): Promise<void> {
    await this.db.delete(idempotencyKeys).where(and(eq(idempotencyKeys.tenantId, tenantId), eq(idempotencyKeys.key, key), isNull(idempotencyKeys.responseStatus)))
  }

  /** Move an unanswered claim's start to `at`: now for a retry that takes it over (concurrent retries then wait), or back past the in-flight window for a request that failed (its retry takes over at once). */
  async touchIdempotencyKey(tenantId: string, key: string, at: number): Promise<void> {
    await this.db.update(idempotencyKeys).set({ createdAt: at }).where(and(eq(idempotencyKeys.tenantId, tenantId), eq(idempotencyKeys.key, key), isNull(idempotencyKeys.responseStatus)))
  }

}

export { schema }
