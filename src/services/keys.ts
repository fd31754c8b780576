import type { SecretBox } from '../core/crypto.ts'
import { KEY_FINGERPRINT } from '../db/sealed.ts'
import type { Store } from '../db/store.ts'

/**
 * Refuse to start with an encryption key other than the database's. The first start records
 * the current key's fingerprint (never the key); later starts must hold that key among theirs
 * (RUNRELAY_ENCRYPTION_KEY="new,old" during a rotation). A database from before fingerprints,
 * with secrets in it, is checked by opening one.
 */
export async function checkEncryptionKey(store: Store, secrets: SecretBox, now: number): Promise<void> {
  const mine = secrets.fingerprints
  const stored = await store.settings.get(KEY_FINGERPRINT)
  if (stored === undefined) {
    const [sample] = await store.sealed.list()
    if (sample) await secrets.decrypt(sample.value).catch(() => { throw mismatch('none recorded; a stored secret does not open with it', mine) })
  }
  // Insert unless present (concurrent first starts agree on one row), then compare with what is in force.
  const inForce = await store.settings.claim(KEY_FINGERPRINT, mine[0]!, now)
  if (!mine.includes(inForce)) throw mismatch(inForce, mine)
}

const mismatch = (stored: string, mine: string[]) => new Error(
  `RUNRELAY_ENCRYPTION_KEY does not match this database's encryption key (database: ${stored}; this process: ${mine.join(', ')}). `
  + 'Every process on one database must share RUNRELAY_ENCRYPTION_KEY (a process without it generates its own key in its data dir). '
  + 'To change the key, see RELIABILITY.md "Rotating the encryption key".',
)

/**
 * Re-seal every stored secret with the current (first) key and record its fingerprint: the
 * last step of a rotation, after which the old key may be removed. Idempotent; safe while
 * processes run (each write is conditional on the value read, and tells their caches).
 */
export async function rotateEncryptionKeys(store: Store, secrets: SecretBox, now: number): Promise<{ resealed: number; current: number; failed: number }> {
  let resealed = 0
  let current = 0
  let failed = 0
  for (const s of await store.sealed.list()) {
    let opened: { value: unknown; current: boolean }
    try {
      opened = await secrets.open(s.value)
    } catch {
      failed++
      continue
    }
    if (opened.current) { current++; continue }
    if (await store.sealed.reseal(s, await secrets.encrypt(opened.value), now)) resealed++
  }
  // Only when every secret opens with the current key may it become the database's key.
  if (failed === 0) await store.sealed.setKeyFingerprint(secrets.fingerprints[0]!, now)
  return { resealed, current, failed }
}
