/**
 * The Store's read cache of API keys, workflows and connections (Node/Deno): a change made
 * through the same store holds at once, a change made by another process (a second store on
 * the same file) is seen once the entry expires, and a read that overlapped a change is never
 * cached (it may predate the change).
 */
import { rmSync } from 'node:fs'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { Store } from '../../src/db/store.ts'
import { migratedStore, storeIn } from '../helpers/store.ts'

describe('Store read cache of keys, workflows and connections', () => {
  let dir: string
  let cached: Store
  let other: Store
  beforeEach(async () => {
    ;({ dir, store: cached } = await migratedStore('config-cache'))
    cached.enableReadCache(60_000)
    other = storeIn(dir)
    await cached.keys.create({ id: 'key_1', tenantId: 't', name: 'k', prefix: 'rr_k', hash: 'h1', scopes: ['admin'], createdAt: 1 })
    await cached.catalog.createConnection({ id: 'conn_1', tenantId: 't', name: 'c1', provider: 'http', baseUrl: 'http://x.test', config: {}, secret: 's', createdAt: 1, updatedAt: 1 })
    await cached.catalog.createWorkflow({ id: 'wf_1', tenantId: 't', name: 'w1', connectionId: 'conn_1', upstreamWorkflowId: 'u', pollPolicy: {}, config: {}, tags: [], createdAt: 1, updatedAt: 1 })
  })
  afterEach(() => rmSync(dir, { recursive: true, force: true }))

  it('a key revoked by another process is still served from the cache; revoked through this store, at once', async () => {
    expect((await cached.keys.findByHash('h1'))?.revokedAt).toBeNull()
    await other.keys.revoke('t', 'key_1', 5)
    expect((await cached.keys.findByHash('h1'))?.revokedAt).toBeNull()
    await cached.keys.revoke('t', 'key_1', 6)
    expect((await cached.keys.findByHash('h1'))?.revokedAt).toBe(5)
  })

  it('workflows and connections: another process\'s change waits for the entry to expire; this store\'s holds at once', async () => {
    expect((await cached.catalog.getWorkflow('t', 'wf_1'))?.name).toBe('w1')
    expect((await cached.catalog.getConnection('t', 'conn_1'))?.name).toBe('c1')
    await other.catalog.updateWorkflow('t', 'wf_1', { name: 'w2' })
    await other.catalog.updateConnection('t', 'conn_1', { name: 'c2' })
    expect((await cached.catalog.getWorkflow('t', 'wf_1'))?.name).toBe('w1')
    expect((await cached.catalog.getConnection('t', 'conn_1'))?.name).toBe('c1')
    await cached.catalog.updateWorkflow('t', 'wf_1', { name: 'w3' })
    await cached.catalog.updateConnection('t', 'conn_1', { name: 'c3' })
    expect((await cached.catalog.getWorkflow('t', 'wf_1'))?.name).toBe('w3')
    expect((await cached.catalog.getConnection('t', 'conn_1'))?.name).toBe('c3')
    // Another tenant's id is not served from this tenant's entry.
    expect(await cached.catalog.getWorkflow('t2', 'wf_1')).toBeUndefined()
  })

  it('a read that overlapped a change made here is not cached', async () => {
    const reading = cached.catalog.getWorkflow('t', 'wf_1')
    await cached.catalog.updateWorkflow('t', 'wf_1', { name: 'w2' })
    await reading
    await other.catalog.updateWorkflow('t', 'wf_1', { name: 'w3' })
    expect((await cached.catalog.getWorkflow('t', 'wf_1'))?.name).toBe('w3')
  })
})
