import { createClient } from '@libsql/client'
import { drizzle } from 'drizzle-orm/libsql'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { parseConfig } from '../../config.ts'
import { schema, Store } from '../../db/store.ts'

/** Apply pending migrations to LIBSQL_URL (default: the embedded file under the data dir) and exit. */
export async function migrateOnly(env: Record<string, string | undefined> = process.env): Promise<number> {
  const config = parseConfig(env)
  mkdirSync(config.RUNRELAY_DATA_DIR, { recursive: true })
  const client = createClient({ url: config.LIBSQL_URL ?? `file:${join(config.RUNRELAY_DATA_DIR, 'runrelay.db')}`, authToken: config.LIBSQL_AUTH_TOKEN })
  try {
    return await new Store(drizzle(client, { schema })).migrate()
  } finally {
    client.close()
  }
}

if (process.argv[1]?.endsWith('migrate-cli.ts')) {
  const applied = await migrateOnly()
  console.log(applied ? `applied ${applied} migration(s)` : 'database is up to date')
}
