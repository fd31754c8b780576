import type { BatchItem } from 'drizzle-orm/batch'
import { eq, sql } from 'drizzle-orm'
import { setNewest } from '../core/bounded-map.ts'
import type { Db } from './db.ts'
import { settings } from './schema.ts'

/**
 * Rows kept by key for `ttlMs` (from when they were set); the least recently used go first past
 * `max`. Hand-made on purpose: lru-cache does the same in 18 KiB of the Worker bundle, which
 * never uses this cache, and took it past its budget. Off (holds nothing) until enabled.
 */
export class ReadCache<T> {
  private readonly rows = new Map<string, { row: T; at: number }>()
  enabled = false
  constructor(public ttlMs: number, private readonly max = 10_000) {}

  get(key: string): T | undefined {
    if (!this.enabled) return undefined
    const hit = this.rows.get(key)
    if (!hit) return undefined
    if (Date.now() - hit.at > this.ttlMs) { this.rows.delete(key); return undefined }
    // Map order is insertion order: moving a hit to the end makes the first key the least recently used.
    setNewest(this.rows, key, hit, this.max)
    return hit.row
  }

  set(key: string, row: T): void {
    if (!this.enabled) return
    setNewest(this.rows, key, { row, at: Date.now() }, this.max)
  }

  delete(key: string): void { this.rows.delete(key) }

  clear(): void { this.rows.clear() }

  /** Drop the rows `pred` picks. */
  deleteWhere(pred: (row: T) => boolean): void {
    for (const [k, v] of this.rows) if (pred(v.row)) this.rows.delete(k)
  }
}

/** The settings row counting changes of cached rows, shared by the processes on one database. */
const CACHE_EPOCH = 'cache_epoch'

/**
 * The read cache of keys, workflows and connections the aggregate modules share (see
 * Store.enableReadCache): one change generation, one shared change counter in the database
 * (`cache_epoch`) that every announced change bumps, and `sync`, which empties the caches
 * when another process bumped it.
 */
export class SharedReadCache {
  private readonly synced: ReadCache<unknown>[] = []
  private readonly local: ReadCache<unknown>[] = []
  private on = false
  /** Bumped by every change of a cached kind: a read that overlapped one does not fill the cache. */
  generation = 0
  /** The shared change counter as this process last read it (undefined before the first sync). */
  private epoch?: string
  private epochQuery?: { all(): Promise<Array<{ value: string }>> }

  constructor(private readonly db: Db) {}

  /** A cache emptied when another process announces a change (TTL: the one enabled). */
  syncedCache<T>(): ReadCache<T> {
    const c = new ReadCache<T>(0)
    this.synced.push(c as ReadCache<unknown>)
    return c
  }

  /** A cache of this process's own writes only (fixed TTL), on while the read cache is. */
  localCache<T>(ttlMs: number, max: number): ReadCache<T> {
    const c = new ReadCache<T>(ttlMs, max)
    this.local.push(c as ReadCache<unknown>)
    return c
  }

  get enabled(): boolean { return this.on }

  /** Turn every cache on with `ttlMs` (0: off), emptied. */
  enable(ttlMs: number): void {
    this.on = ttlMs > 0
    for (const c of this.synced) { c.enabled = this.on; c.ttlMs = ttlMs; c.clear() }
    for (const c of this.local) { c.enabled = this.on; c.clear() }
  }

  /** `key` from `cache`, else `read()`; the row read is cached unless a change went through meanwhile (it may predate it). */
  async read<T>(cache: ReadCache<T>, key: string, read: () => Promise<T | undefined>): Promise<T | undefined> {
    const cached = cache.get(key)
    if (cached) return cached
    const gen = this.generation
    const row = await read()
    if (row && gen === this.generation) cache.set(key, row)
    return row
  }

  /**
   * Run a change of a cached row together with a bump of the shared change counter, in one
   * transaction, so the other processes' read caches hear of it: no process can see the
   * change without the bump, not even after a crash between the two.
   */
  async announced<Q extends BatchItem<'sqlite'>>(change: Q): Promise<Q['_']['result']> {
    if (!this.on) return await change
    const now = Date.now()
    const bump = this.db.insert(settings).values({ key: CACHE_EPOCH, value: '1', updatedAt: now })
      .onConflictDoUpdate({ target: settings.key, set: { value: sql`cast(${settings.value} as integer) + 1`, updatedAt: now } })
    const [result] = await this.db.batch([change, bump])
    return result
  }

  /** Run `write` with `drop()` done before (no read fills the entry meanwhile) and after (nor one that overlapped), announced to the other processes. */
  async changing<Q extends BatchItem<'sqlite'>>(drop: () => void, write: Q): Promise<Q['_']['result']> {
    this.generation++
    drop()
    const result = await this.announced(write)
    this.generation++
    drop()
    return result
  }

  /**
   * Empty the synced caches if another process changed a cached row since the last call: one
   * primary-key read. A read that overlapped the emptying does not fill the cache again.
   */
  async sync(): Promise<void> {
    if (!this.on) return
    // Built once, like the tail's queries: every process runs it several times a second.
    this.epochQuery ??= this.db.select({ value: settings.value }).from(settings).where(eq(settings.key, CACHE_EPOCH)).prepare()
    const epoch = (await this.epochQuery.all())[0]?.value ?? '0'
    if (this.epoch !== undefined && epoch !== this.epoch) {
      this.generation++
      for (const c of this.synced) c.clear()
    }
    this.epoch = epoch
  }
}
