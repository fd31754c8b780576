import { and, eq, isNotNull, sql } from 'drizzle-orm'
import { connections, settings, webhookEndpoints } from './schema.ts'
import type { Db } from './db.ts'

/** The settings row holding the fingerprint of the key the stored secrets are sealed with. */
export const KEY_FINGERPRINT = 'encryption_key_fingerprint'
/** The settings row counting changes of cached rows (store.ts): bumped so every process drops a cached connection. */
const CACHE_EPOCH = 'cache_epoch'

/** One sealed value at rest: where it lives and what it is now. */
export interface SealedSecret { table: 'connections' | 'webhook_endpoints'; id: string; column: 'secret' | 'previous_secret'; value: string }

/** Every sealed secret at rest (for key rotation): connections' credentials, webhook endpoints' signing secrets. */
export async function listSealedSecrets(db: Db): Promise<SealedSecret[]> {
  const out: SealedSecret[] = []
  for (const c of await db.select({ id: connections.id, secret: connections.secret }).from(connections)) out.push({ table: 'connections', id: c.id, column: 'secret', value: c.secret })
  for (const e of await db.select({ id: webhookEndpoints.id, secret: webhookEndpoints.secret, previous: webhookEndpoints.previousSecret }).from(webhookEndpoints)) {
    out.push({ table: 'webhook_endpoints', id: e.id, column: 'secret', value: e.secret })
    if (e.previous) out.push({ table: 'webhook_endpoints', id: e.id, column: 'previous_secret', value: e.previous })
  }
  return out
}

/**
 * Replace one sealed secret with `next` if it is still what was read (a concurrent edit wins,
 * and is sealed with the current key anyway), bumping the cache epoch in the same batch so
 * every running process re-reads it. Whether it was replaced.
 */
export async function resealSecret(db: Db, s: SealedSecret, next: string, now: number): Promise<boolean> {
  const bump = db.insert(settings).values({ key: CACHE_EPOCH, value: '1', updatedAt: now })
    .onConflictDoUpdate({ target: settings.key, set: { value: sql`cast(${settings.value} as integer) + 1`, updatedAt: now } })
  const update = s.table === 'connections'
    ? db.update(connections).set({ secret: next }).where(and(eq(connections.id, s.id), eq(connections.secret, s.value))).returning({ id: connections.id })
    : s.column === 'secret'
      ? db.update(webhookEndpoints).set({ secret: next }).where(and(eq(webhookEndpoints.id, s.id), eq(webhookEndpoints.secret, s.value))).returning({ id: webhookEndpoints.id })
      : db.update(webhookEndpoints).set({ previousSecret: next }).where(and(eq(webhookEndpoints.id, s.id), isNotNull(webhookEndpoints.previousSecret), eq(webhookEndpoints.previousSecret, s.value))).returning({ id: webhookEndpoints.id })
  const [rows] = await db.batch([update, bump])
  return rows.length > 0
}

/** Record `fingerprint` as the key the stored secrets are sealed with (after a rotation). */
export async function setKeyFingerprint(db: Db, fingerprint: string, now: number): Promise<void> {
  await db.insert(settings).values({ key: KEY_FINGERPRINT, value: fingerprint, updatedAt: now })
    .onConflictDoUpdate({ target: settings.key, set: { value: fingerprint, updatedAt: now } })
}
