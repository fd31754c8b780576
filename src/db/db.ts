import type { Client, InStatement, InValue, ResultSet } from '@libsql/client'
import type { LibSQLDatabase } from 'drizzle-orm/libsql'
import type * as schema from './schema.ts'

/** The drizzle database every module of src/db queries, with the libSQL client under it; private to src/db (see Store). */
export type Db = LibSQLDatabase<typeof schema> & { $client: Client }

/** A raw statement for the libSQL client: sql with positional args. */
export interface RawStatement { sql: string; args: unknown[] }

/**
 * Write batches that no pass of this process waits for: the per-key rate limiter's heartbeat,
 * once a second on an idle process. The local write connection (runtime/local/write-connection.ts)
 * leaves them out of its count of own commits, so they do not wake the passes that sleep while
 * the database's change counter stands still (issue 26: they woke every pass each second).
 */
const bookkeeping = new WeakSet<object>()

/** Whether a batch's statements were marked as bookkeeping by `rawClient(…).batch(…, { bookkeeping: true })`. */
export function isBookkeeping(statements: object): boolean { return bookkeeping.has(statements) }

/** The libSQL client under `db`, for statements drizzle's builders would only slow down (batches of raw SQL). */
export function rawClient(db: Db): {
  execute(s: RawStatement): Promise<ResultSet>
  batch(s: RawStatement[], mode?: 'write' | 'read' | 'deferred', opts?: { bookkeeping?: boolean }): Promise<ResultSet[]>
} {
  const client = db.$client
  return {
    execute: (s) => client.execute(statement(s)),
    batch: (s, mode, opts) => {
      const statements = s.map(statement)
      if (opts?.bookkeeping) bookkeeping.add(statements)
      return client.batch(statements, mode)
    },
  }
}

/** Args as the client types them: the values a statement binds are the driver values drizzle maps columns to. */
function statement(s: RawStatement): InStatement {
  return { sql: s.sql, args: s.args as InValue[] }
}
