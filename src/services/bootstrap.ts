import type { Store } from '../db/store.ts'
import { newApiKey, newId, sha256Hex } from '../core/crypto.ts'

/** The id of the root key generated at the first start (RUNRELAY_ROOT_KEY unset). */
const GENERATED_ROOT_KEY_ID = 'key_root'

/**
 * Make sure a root key exists. With `given` (RUNRELAY_ROOT_KEY) that key is the root key;
 * otherwise one is created on the first start and returned so the caller prints it once.
 */
export async function ensureRootKey(store: Store, given: string | undefined, now: number): Promise<{ createdKey?: string }> {
  if (given) {
    const hash = await sha256Hex(given)
    // Processes starting together all insert it: the unique hash keeps one row, the others do nothing.
    if (!(await store.keys.findByHash(hash))) {
      await store.keys.ensure({ id: newId('key'), tenantId: null, name: 'root (RUNRELAY_ROOT_KEY)', prefix: given.slice(0, 10), hash, scopes: ['root'], createdAt: now })
    }
    return {}
  }
  if (await store.keys.hasRootKey()) return {}
  // One fixed id for the generated root key: of processes starting together on a fresh
  // database, one inserts it (and prints it), the others find it there.
  const { key, prefix } = newApiKey()
  const created = await store.keys.ensure({ id: GENERATED_ROOT_KEY_ID, tenantId: null, name: 'root', prefix, hash: await sha256Hex(key), scopes: ['root'], createdAt: now })
  return created ? { createdKey: key } : {}
}
