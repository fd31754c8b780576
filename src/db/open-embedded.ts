import type { Client } from '@libsql/client'
// The sqlite3 flavour of drizzle's driver: it takes any client; its own import is only the embedded one.
import { drizzle } from 'drizzle-orm/libsql/sqlite3'
import * as schema from './schema.ts'
import { Store } from './store.ts'

/** The store over a client of the local runtimes (embedded file, or any libSQL URL). */
export function openStore(client: Client): Store {
  return new Store(drizzle(client, { schema }))
}
