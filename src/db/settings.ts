import { eq } from 'drizzle-orm'
import type { Db } from './db.ts'
import { rawClient } from './db.ts'
import { settings } from './schema.ts'

/** The settings rows (one value per key) and the shared request budgets. */
export class SettingsStore {
  constructor(private readonly db: Db) {}

  /** A setting's value, if set. */
  async get(key: string): Promise<string | undefined> {
    const [row] = await this.db.select().from(settings).where(eq(settings.key, key))
    return row?.value
  }

  /** Insert a setting unless it exists; returns the value in force. */
  async claim(key: string, value: string, now: number): Promise<string> {
    await this.db.insert(settings).values({ key, value, updatedAt: now }).onConflictDoNothing()
    return (await this.get(key)) ?? value
  }

  /**
   * Node/Deno processes (leases) and a Workers deployment (Durable Objects, which know
   * nothing of leases) must not both watch the runs of one database: the first to start
   * claims the database for its kind in a settings row; the other kind refuses to start.
   */
  async claimDeployment(kind: 'local' | 'workers', now: number): Promise<void> {
    const owner = await this.claim('deployment_kind', kind, now)
    if (owner === kind) return
    const name = (k: string) => (k === 'workers' ? 'Cloudflare Workers' : 'Node/Deno')
    throw new Error(`this database belongs to a ${name(owner)} deployment (settings row deployment_kind = ${owner}): runrelay on ${name(kind)} `
      + `refuses to start on it, as both would watch the same runs. Use another database, or delete that row once the other deployment is gone for good.`)
  }

  /**
   * Reserve a token of a shared bucket in one statement (see SharedRateBudget): refill since
   * the last reservation (never backwards if clocks differ), cap at max(1, perSecond), take
   * one; returns the tokens left (negative: wait).
   */
  async reserveRateToken(key: string, perSecond: number, now: number): Promise<number> {
    const cap = Math.max(1, perSecond)
    const res = await rawClient(this.db).execute({
      sql: 'insert into "rate_budgets" ("key", "tokens", "at") values (?1, ?2 - 1, ?3) on conflict ("key") do update set '
        + '"tokens" = min(?2, "tokens" + max(0, excluded."at" - "at") * ?4 / 1000.0) - 1, "at" = max("at", excluded."at") returning "tokens"',
      args: [key, cap, now, perSecond],
    })
    return Number(res.rows[0]![0])
  }
}
