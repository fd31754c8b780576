import { mkdirSync } from 'node:fs'
import { parseConfig } from '../../config.ts'
import { openEmbeddedStore } from '../local/embedded.ts'

/** Apply pending migrations to LIBSQL_URL (default: the embedded file under the data dir) and exit. */
export async function migrateOnly(env: Record<string, string | undefined> = process.env): Promise<number> {
  const config = parseConfig(env)
  mkdirSync(config.RUNRELAY_DATA_DIR, { recursive: true })
  const { store, client } = await openEmbeddedStore(config)
  try {
    return await store.migrate()
  } finally {
    client.close()
  }
}

if (process.argv[1]?.endsWith('migrate-cli.ts')) {
  const applied = await migrateOnly()
  console.log(applied ? `applied ${applied} migration(s)` : 'database is up to date')
}
