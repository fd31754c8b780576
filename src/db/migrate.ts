import { sql } from 'drizzle-orm'
import type { LibSQLDatabase } from 'drizzle-orm/libsql'
import { MIGRATIONS } from './migrations.generated.ts'

const TABLE = '__drizzle_migrations'

/**
 * Apply drizzle-kit's migrations (embedded at build time, see scripts/embed-migrations.ts)
 * with the same bookkeeping table as drizzle's file-based migrator, in one atomic batch.
 */
export async function migrate(db: LibSQLDatabase<any>): Promise<number> {
  // Several processes may start at once on a fresh database: each computes what is pending and
  // applies it in one atomic batch; a loser's batch fails as a whole (its tables exist now), so it
  // reads the bookkeeping again and finds nothing left to do.
  for (let attempt = 1; ; attempt++) {
    try {
      return await migrateOnce(db)
    } catch (err) {
      if (attempt >= 5) throw err
      await new Promise((r) => setTimeout(r, 50 * attempt + Math.random() * 100))
    }
  }
}

async function migrateOnce(db: LibSQLDatabase<any>): Promise<number> {
  await db.run(sql.raw(`CREATE TABLE IF NOT EXISTS ${TABLE} (id SERIAL PRIMARY KEY, hash text NOT NULL, created_at numeric)`))
  const last = await db.values<[unknown, string, unknown]>(sql.raw(`SELECT id, hash, created_at FROM ${TABLE} ORDER BY created_at DESC LIMIT 1`))
  const lastMillis = last[0] ? Number(last[0][2]) : -1
  const pending = MIGRATIONS.filter((m) => m.folderMillis > lastMillis)
  if (pending.length === 0) return 0
  const statements: any[] = []
  for (const m of pending) {
    for (const stmt of m.sql) if (stmt.trim()) statements.push(db.run(sql.raw(stmt)))
    statements.push(db.run(sql`INSERT INTO ${sql.identifier(TABLE)} ("hash", "created_at") VALUES (${m.hash}, ${m.folderMillis})`))
  }
  await (db as any).session.migrate(statements)
  return pending.length
}
