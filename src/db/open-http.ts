import type { Client } from '@libsql/client/http'
// libSQL over HTTP only: the Worker bundle carries neither the embedded engine nor the WebSocket client.
import { drizzle } from 'drizzle-orm/libsql/http'
import * as schema from './schema.ts'
import { Store } from './store.ts'

/** The store over libSQL's HTTP client (Workers). */
export function openStore(client: Client): Store {
  return new Store(drizzle(client, { schema }))
}
