import type { Store } from '../db/store.ts'
import { newApiKey, newId, sha256Hex } from '../core/crypto.ts'

/**
 * Make sure a root key exists. With `given` (RUNRELAY_ROOT_KEY) that key is the root key;
 * otherwise one is created on the first start and returned so the caller prints it once.
 */
export async function ensureRootKey(store: Store, given: string | undefined, now: number): Promise<{ createdKey?: string }> {
  if (given) {
    const hash = await sha256Hex(given)
    // Processes starting together all insert it: the unique hash keeps one row, the others do nothing.
    if (!(await store.findApiKeyByHash(hash))) {
      await store.ensureApiKey({ id: newId('key'), tenantId: null, name: 'root (RUNRELAY_ROOT_KEY)', prefix: given.slice(0, 10), hash, scopes: ['root'], createdAt: now })
    }
    return {}
  }
  if (await store.hasRootKey()) return {}
  const { key, prefix } = newApiKey()
  await store.createApiKey({ id: newId('key'), tenantId: null, name: 'root', prefix, hash: await sha256Hex(key), scopes: ['root'], createdAt: now })
  return { createdKey: key }
}
