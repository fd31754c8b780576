import type { Client, InStatement, InValue, ResultSet } from '@libsql/client'
import type { LibSQLDatabase } from 'drizzle-orm/libsql'
import type * as schema from './schema.ts'

/** The drizzle database every module of src/db queries, with the libSQL client under it; private to src/db (see Store). */
export type Db = LibSQLDatabase<typeof schema> & { $client: Client }

/** A raw statement for the libSQL client: sql with positional args. */
export interface RawStatement { sql: string; args: unknown[] }

/** The libSQL client under `db`, for statements drizzle's builders would only slow down (batches of raw SQL). */
export function rawClient(db: Db): { execute(s: RawStatement): Promise<ResultSet>; batch(s: RawStatement[], mode?: 'write' | 'read' | 'deferred'): Promise<ResultSet[]> } {
  const client = db.$client
  return {
    execute: (s) => client.execute(statement(s)),
    batch: (s, mode) => client.batch(s.map(statement), mode),
  }
}

/** Args as the client types them: the values a statement binds are the driver values drizzle maps columns to. */
function statement(s: RawStatement): InStatement {
  return { sql: s.sql, args: s.args as InValue[] }
}
