import { and, desc, eq, lt, or, type SQL } from 'drizzle-orm'
import type { SQLiteColumn, SQLiteTable } from 'drizzle-orm/sqlite-core'
import { fromBase64Url, toBase64Url } from '../core/crypto.ts'
import type { Db } from './db.ts'

export interface Page<T> { items: T[]; nextCursor: string | null }

/** The opaque cursor of a list page: the (created_at, id) of its last row. */
export function encodeCursor(createdAt: number, id: string): string {
  return toBase64Url(new TextEncoder().encode(JSON.stringify([createdAt, id])))
}

/** A cursor's (created_at, id), or null if it is not one of ours. */
export function decodeCursor(cursor: string): [number, string] | null {
  try {
    const v: unknown = JSON.parse(new TextDecoder().decode(fromBase64Url(cursor)))
    return Array.isArray(v) && typeof v[0] === 'number' && typeof v[1] === 'string' ? [v[0], v[1]] : null
  } catch {
    return null
  }
}

/** Newest-first keyset pagination over (created_at, id). */
export function keyset(table: { createdAt: SQLiteColumn; id: SQLiteColumn }, cursor: [number, string] | null): SQL | undefined {
  if (!cursor) return undefined
  return or(lt(table.createdAt, cursor[0]), and(eq(table.createdAt, cursor[0]), lt(table.id, cursor[1])))
}

/** A page of `limit` rows from `limit + 1` read, with the cursor of the next one if there is more. */
export function page<T extends { createdAt: number; id: string }>(rows: T[], limit: number): Page<T> {
  const items = rows.slice(0, limit)
  const last = items[items.length - 1]
  return { items, nextCursor: rows.length > limit && last ? encodeCursor(last.createdAt, last.id) : null }
}

/**
 * A page of `table`'s rows that match `where`, newest first (created_at, then id), after
 * `cursor`: the order the keyset cursor is made for.
 */
export async function newestFirst<T extends SQLiteTable & { createdAt: SQLiteColumn; id: SQLiteColumn }>(
  db: Db, table: T, where: (SQL | undefined)[], cursor: [number, string] | null, limit: number,
): Promise<Page<T['$inferSelect'] & { createdAt: number; id: string }>> {
  const rows = await db.select().from(table as SQLiteTable).where(and(...where, keyset(table, cursor))).orderBy(desc(table.createdAt), desc(table.id)).limit(limit + 1)
  return page(rows as (T['$inferSelect'] & { createdAt: number; id: string })[], limit)
}
