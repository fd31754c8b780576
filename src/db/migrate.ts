import { sql } from 'drizzle-orm'
import type { InStatement } from '@libsql/client'
import type { Db } from './db.ts'
import { MIGRATIONS } from './migrations.generated.ts'

const TABLE = '__drizzle_migrations'

/**
 * Apply drizzle-kit's migrations (embedded at build time, see scripts/embed-migrations.ts)
 * with the same bookkeeping table as drizzle's file-based migrator, in one atomic batch.
 */
export async function migrate(db: Db): Promise<number> {
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

async function migrateOnce(db: Db): Promise<number> {
  await db.run(sql.raw(`CREATE TABLE IF NOT EXISTS ${TABLE} (id SERIAL PRIMARY KEY, hash text NOT NULL, created_at numeric)`))
  const last = await db.values<[unknown, string, unknown]>(sql.raw(`SELECT id, hash, created_at FROM ${TABLE} ORDER BY created_at DESC LIMIT 1`))
  const lastMillis = last[0] ? Number(last[0][2]) : -1
  const pending = MIGRATIONS.filter((m) => m.folderMillis > lastMillis)
  if (pending.length === 0) return 0
  const statements: InStatement[] = []
  for (const m of pending) {
    for (const stmt of m.sql) if (stmt.trim()) statements.push({ sql: stmt, args: [] })
    statements.push({ sql: `INSERT INTO "${TABLE}" ("hash", "created_at") VALUES (?, ?)`, args: [m.hash, m.folderMillis] })
  }
  // The client's migrate: one batch with foreign keys off, as drizzle's own migrator runs it.
  await db.$client.migrate(statements)
  return pending.length
}
