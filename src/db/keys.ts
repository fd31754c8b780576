import { and, eq, gt, isNull, sql } from 'drizzle-orm'
import type { Db } from './db.ts'
import { newestFirst, type Page } from './page.ts'
import type { SharedReadCache } from './read-cache.ts'
import { apiKeys, tenants, tokenRevocations } from './schema.ts'
import { TriggerTokenQueries } from './trigger-tokens.ts'

export type TenantRow = typeof tenants.$inferSelect
export type ApiKeyRow = typeof apiKeys.$inferSelect
/** A tenant's token revocations in force: a not-before time (0: none) and revoked token ids. */
export interface TokenRevocations { notBefore: number; ids: ReadonlySet<string> }

/** Tenants, their API keys, and subscriber and trigger tokens (revocations, run budgets). */
export class KeyStore {
  private readonly byKey
  private readonly revocations
  /** The run budgets of trigger tokens. */
  readonly triggerTokens: TriggerTokenQueries

  constructor(private readonly db: Db, private readonly cache: SharedReadCache) {
    this.byKey = cache.syncedCache<ApiKeyRow>()
    this.revocations = cache.syncedCache<TokenRevocations>()
    this.triggerTokens = new TriggerTokenQueries(db)
  }

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

  async create(row: typeof apiKeys.$inferInsert): Promise<ApiKeyRow> {
    const [k] = await this.db.insert(apiKeys).values(row).returning()
    return k!
  }

  /** Insert a key unless one with its id or hash exists (concurrent starts bootstrapping one root key); whether it was inserted. */
  async ensure(row: typeof apiKeys.$inferInsert): Promise<boolean> {
    return (await this.db.insert(apiKeys).values(row).onConflictDoNothing().returning({ id: apiKeys.id })).length > 0
  }

  /** A key by the hash of its secret (every request): cached, synced across processes. */
  async findByHash(hash: string): Promise<ApiKeyRow | undefined> {
    return this.cache.read(this.byKey, hash, async () => (await this.db.select().from(apiKeys).where(eq(apiKeys.hash, hash)))[0])
  }

  /** A key by id (subscriber tokens name the key that minted them); cached like findByHash, and dropped with it on revocation. */
  async findById(id: string): Promise<ApiKeyRow | undefined> {
    return this.cache.read(this.byKey, `id:${id}`, async () => (await this.db.select().from(apiKeys).where(eq(apiKeys.id, id)))[0])
  }

  async hasRootKey(): Promise<boolean> {
    const [k] = await this.db.select({ id: apiKeys.id }).from(apiKeys).where(isNull(apiKeys.tenantId)).limit(1)
    return !!k
  }

  async list(tenantId: string, cursor: [number, string] | null, limit: number): Promise<Page<ApiKeyRow>> {
    return newestFirst(this.db, apiKeys, [eq(apiKeys.tenantId, tenantId)], cursor, limit)
  }

  /** Revoke a key; announced, so every process refuses it within its read-cache sync. */
  async revoke(tenantId: string, id: string, now: number): Promise<ApiKeyRow | undefined> {
    const [k] = await this.cache.changing(() => this.byKey.deleteWhere((k) => k.id === id), this.db.update(apiKeys).set({ revokedAt: now })
      .where(and(eq(apiKeys.id, id), eq(apiKeys.tenantId, tenantId), isNull(apiKeys.revokedAt))).returning())
    return k
  }

  async touch(id: string, now: number): Promise<void> {
    await this.db.update(apiKeys).set({ lastUsedAt: now }).where(eq(apiKeys.id, id))
  }

  /** The tenant's token revocations still in force at `now` (one small read, cached and synced across processes like keys). */
  async tokenRevocations(tenantId: string, now: number): Promise<TokenRevocations> {
    return (await this.cache.read(this.revocations, tenantId, async () => {
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
    await this.cache.changing(() => this.revocations.delete(tenantId), this.db.insert(tokenRevocations).values({ tenantId, tokenId, before, expiresAt })
      .onConflictDoUpdate({
        target: [tokenRevocations.tenantId, tokenRevocations.tokenId],
        set: { before: sql`max(${tokenRevocations.before}, excluded.before)`, expiresAt: sql`max(${tokenRevocations.expiresAt}, excluded.expires_at)` },
      }))
  }
}
