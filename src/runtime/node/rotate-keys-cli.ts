import { mkdirSync } from 'node:fs'
import { parseConfig } from '../../config.ts'
import { SecretBox } from '../../core/crypto.ts'
import { rotateEncryptionKeys } from '../../services/keys.ts'
import { encryptionKey, openEmbeddedStore } from '../local/embedded.ts'
import { nodeKeyFiles } from './key-files.ts'

/**
 * `npm run rotate-keys`: re-seal every stored secret of LIBSQL_URL with the first key of
 * RUNRELAY_ENCRYPTION_KEY ("new,old") and record it as the database's key. See RELIABILITY.md
 * "Rotating the encryption key" for the steps around it.
 */
export async function rotateKeys(env: Record<string, string | undefined> = process.env) {
  const config = parseConfig(env)
  if (!config.RUNRELAY_ENCRYPTION_KEY?.includes(',')) {
    throw new Error('RUNRELAY_ENCRYPTION_KEY must list the new key first, then the old one(s): "new,old"')
  }
  mkdirSync(config.RUNRELAY_DATA_DIR, { recursive: true })
  const { store, client } = await openEmbeddedStore(config)
  try {
    await store.migrate()
    const secrets = await SecretBox.fromKey(await encryptionKey(config, nodeKeyFiles))
    return { ...(await rotateEncryptionKeys(store, secrets, Date.now())), fingerprint: secrets.fingerprints[0] }
  } finally {
    client.close()
  }
}

if (process.argv[1]?.endsWith('rotate-keys-cli.ts')) {
  const result = await rotateKeys()
  console.log(JSON.stringify(result))
  if (result.failed > 0) {
    console.error(`${result.failed} secret(s) open with none of the keys given: the database's key is unchanged; add the key they were sealed with and run again`)
    process.exit(1)
  }
}
