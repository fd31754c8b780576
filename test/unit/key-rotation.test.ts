/**
 * Encryption keys: several keys (the first seals and signs, all open and verify), the
 * database's key fingerprint checked at start, and the rotation that re-seals stored secrets.
 * Real libSQL file database.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { newEncryptionKey, newId, SecretBox } from '../../src/core/crypto.ts'
import { KEY_FINGERPRINT } from '../../src/db/sealed.ts'
import { checkEncryptionKey, rotateEncryptionKeys } from '../../src/services/keys.ts'
import { seedWorkflow, tempDatabase } from '../helpers/jobs.ts'

describe('encryption keys: fingerprint and rotation', () => {
  let db: Awaited<ReturnType<typeof tempDatabase>>
  const oldKey = newEncryptionKey()
  const newKey = newEncryptionKey()
  beforeEach(async () => { db = await tempDatabase() })
  afterEach(() => db.close())

  it('the first key seals and signs; every key opens and verifies', async () => {
    const old = await SecretBox.fromKey(oldKey)
    const both = await SecretBox.fromKey(`${newKey},${oldKey}`)
    const fresh = await SecretBox.fromKey(newKey)
    const sealedOld = await old.encrypt({ token: 'a' })
    expect(await both.decrypt(sealedOld)).toEqual({ token: 'a' })
    expect((await both.open(sealedOld)).current).toBe(false)
    const sealedNew = await both.encrypt({ token: 'b' })
    expect(await fresh.decrypt(sealedNew)).toEqual({ token: 'b' })
    await expect(old.decrypt(sealedNew)).rejects.toThrow(/RUNRELAY_ENCRYPTION_KEY/)
    expect(await both.verify('m', await old.sign('m'))).toBe(true)
    expect(await fresh.verify('m', await both.sign('m'))).toBe(true)
    expect(await old.verify('m', await both.sign('m'))).toBe(false)
    expect(both.fingerprints).toEqual([fresh.fingerprints[0], old.fingerprints[0]])
    expect(old.fingerprints[0]).toMatch(/^[0-9a-f]{16}$/)
    expect(old.fingerprints[0]).not.toContain(oldKey)
  })

  it('records the key at the first start; another key is refused naming RUNRELAY_ENCRYPTION_KEY; "new,old" is accepted', async () => {
    const now = Date.now()
    await checkEncryptionKey(db.store, await SecretBox.fromKey(oldKey), now)
    expect(await db.store.settings.get(KEY_FINGERPRINT)).toBe((await SecretBox.fromKey(oldKey)).fingerprints[0])
    await expect(checkEncryptionKey(db.store, await SecretBox.fromKey(newKey), now)).rejects.toThrow(/RUNRELAY_ENCRYPTION_KEY does not match/)
    await checkEncryptionKey(db.store, await SecretBox.fromKey(`${newKey},${oldKey}`), now)
  })

  it('a database from before fingerprints is checked by opening a stored secret', async () => {
    const now = Date.now()
    const old = await SecretBox.fromKey(oldKey)
    const { tenant } = await seedWorkflow(db.store, now)
    await db.store.catalog.createConnection({ id: newId('con'), tenantId: tenant.id, name: 'sealed', provider: 'demo', baseUrl: 'http://demo.invalid', config: {}, secret: await old.encrypt({ k: 'v' }), createdAt: now, updatedAt: now })
    await expect(checkEncryptionKey(db.store, await SecretBox.fromKey(newKey), now)).rejects.toThrow(/RUNRELAY_ENCRYPTION_KEY/)
  })

  it('rotation re-seals every stored secret with the first key and records it; the old key alone is then refused', async () => {
    const now = Date.now()
    const old = await SecretBox.fromKey(oldKey)
    const { tenant, connection } = await seedWorkflow(db.store, now)
    await db.store.catalog.updateConnection(tenant.id, connection.id, { secret: await old.encrypt({ api_key: 'sk-1' }) })
    const hooks = db.store.webhooks
    await hooks.createEndpoint({ id: newId('whe'), tenantId: tenant.id, url: 'https://example.com/h', filter: '', eventTypes: [], secret: await old.encrypt('whsec_1'), previousSecret: await old.encrypt('whsec_0'), previousSecretExpiresAt: now + 60_000, enabled: true, createdAt: now, updatedAt: now } as any)
    await checkEncryptionKey(db.store, old, now)
    const both = await SecretBox.fromKey(`${newKey},${oldKey}`)
    const result = await rotateEncryptionKeys(db.store, both, now)
    expect(result).toEqual({ resealed: 3, current: 0, failed: 0 })
    const fresh = await SecretBox.fromKey(newKey)
    const values = await Promise.all((await db.store.sealed.list()).map((s) => fresh.decrypt(s.value)))
    expect(values.sort()).toEqual([{ api_key: 'sk-1' }, 'whsec_0', 'whsec_1'].sort())
    expect(await rotateEncryptionKeys(db.store, both, now)).toEqual({ resealed: 0, current: 3, failed: 0 })
    await checkEncryptionKey(db.store, fresh, now)
    await expect(checkEncryptionKey(db.store, old, now)).rejects.toThrow(/RUNRELAY_ENCRYPTION_KEY/)
  })
})
