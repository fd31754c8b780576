import type { Db } from './db.ts'
import { CatalogStore } from './catalog.ts'
import { IdempotencyStore } from './idempotency.ts'
import { KeyRateQueries } from './key-rates.ts'
import { KeyStore } from './keys.ts'
import { LeaseStore } from './leases.ts'
import { migrate } from './migrate.ts'
import { SharedReadCache } from './read-cache.ts'
import { pruneExpired, type PruneOptions, type PruneResult } from './retention.ts'
import { RunStore } from './runs.ts'
import { listSealedSecrets, resealSecret, setKeyFingerprint, type SealedSecret } from './sealed.ts'
import { ScheduleQueries } from './schedules.ts'
import { SettingsStore } from './settings.ts'
import { workflowSummary, type SummaryWindow, type WorkflowSummary } from './summary.ts'
import { WebhookQueries } from './webhooks.ts'
import * as schema from './schema.ts'

// The store's vocabulary, from the modules that own it (callers import it from here).
export type { Db } from './db.ts'
export { decodeCursor, encodeCursor, type Page } from './page.ts'
export type { ApiKeyRow, TenantRow, TokenRevocations } from './keys.ts'
export type { ConnectionRow, WorkflowRow } from './catalog.ts'
export type { EventRow, RunFilter, RunPatch, RunRow } from './runs.ts'
export { copyRunRow } from './runs.ts'
export type { PreparedWrite, RunUpdate } from './run-batch.ts'
export { SeqConflictError } from './store-errors.ts'

/**
 * All of runrelay's persistence, over any libSQL client (embedded file, or HTTP on Workers),
 * by aggregate: each module owns its tables' queries; this composes them and owns the read
 * cache and migrations. The drizzle database stays inside src/db.
 */
export class Store {
  private readonly cache: SharedReadCache
  /** Runs and their events (creation, changes, history, the feed and the tail). */
  readonly runs: RunStore
  /** Run leases of the local runtimes. */
  readonly leases: LeaseStore
  /** Tenants, API keys, subscriber-token revocations, trigger-token budgets. */
  readonly keys: KeyStore
  /** Connections and workflows. */
  readonly catalog: CatalogStore
  /** Idempotency keys of API requests. */
  readonly idempotency: IdempotencyStore
  /** Settings rows and the shared request budgets. */
  readonly settings: SettingsStore
  /** Webhook endpoints, deliveries and attempts. */
  readonly webhooks: WebhookQueries
  /** Schedules. */
  readonly schedules: ScheduleQueries

  constructor(private readonly db: Db) {
    this.cache = new SharedReadCache(db)
    this.runs = new RunStore(db, this.cache)
    this.leases = new LeaseStore(db)
    this.keys = new KeyStore(db, this.cache)
    this.catalog = new CatalogStore(db, this.cache)
    this.idempotency = new IdempotencyStore(db)
    this.settings = new SettingsStore(db)
    this.webhooks = new WebhookQueries(db)
    this.schedules = new ScheduleQueries(db)
  }

  /** The libSQL client under the store: an identity for per-connection helpers (the local runtimes' data_version probe). */
  get client(): object { return this.db.$client }

  /** Apply the migrations this database lacks; how many. */
  migrate(): Promise<number> { return migrate(this.db) }

  /**
   * Keep API keys (by hash), workflows and connections (by id) read through this store for up
   * to `ttlMs`: they are read on every request and every tick. A change made through this
   * store (revoking a key, PATCH or DELETE of a workflow or connection) drops the entry at
   * once, so it holds from the next request or tick. Each such change also bumps a shared
   * counter in the database (`cache_epoch`), and `syncReadCache` (called every fraction of a
   * second by the runtime) empties this cache when another process bumped it: a key revoked
   * on one process stops working on the others within that period, not `ttlMs`. Run rows and
   * short history pages are kept about a second (see RunStore). For the local runtimes (Node,
   * Deno, Bun); Workers isolates do not use it.
   */
  enableReadCache(ttlMs: number): void { this.cache.enable(ttlMs) }

  /** Empty the read cache if another process changed a cached row since the last call (one primary-key read). */
  syncReadCache(): Promise<void> { return this.cache.sync() }

  /** The per-API-key request buckets every process shares (`processId` marks this one live for `liveWindowMs`). */
  keyRates(processId: string, liveWindowMs: number): KeyRateQueries { return new KeyRateQueries(this.db, processId, liveWindowMs) }

  /** A workflow's runs in a window, bucketed (GET /v1/workflows/{id}/summary). */
  workflowSummary(w: SummaryWindow): Promise<WorkflowSummary> { return workflowSummary(this.db, w) }

  /** Retention: delete what tenants asked to keep no longer (see retention.ts). */
  pruneExpired(now: number, opts?: PruneOptions): Promise<PruneResult> { return pruneExpired(this.db, now, opts) }

  /** Every sealed secret at rest, and their resealing under a new key (key rotation, sealed.ts). */
  readonly sealed = {
    list: (): Promise<SealedSecret[]> => listSealedSecrets(this.db),
    reseal: (s: SealedSecret, next: string, now: number): Promise<boolean> => resealSecret(this.db, s, next, now),
    setKeyFingerprint: (fingerprint: string, now: number): Promise<void> => setKeyFingerprint(this.db, fingerprint, now),
  }
}

export { schema }
