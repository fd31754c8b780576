import { rawClient, type Db, type RawStatement } from './db.ts'

/** Prefix of the rows that mark a live process (not a key's bucket). */
const LIVE_PREFIX = '~live:'
/** Keys not used by any process for this long lose their row (a new bucket starts full, as it would have refilled). */
const FORGET_AFTER_MS = 10 * 60_000

/** Keys per statement (3 parameters each, well under SQLite's limit). */
const SYNC_CHUNK = 500

/**
 * The per-API-key buckets every process on one database shares (table key_rate_buckets). A
 * process calls `sync` once per sync period with what it accepted since the last call; one
 * batched upsert subtracts that from each key's global bucket (refilled at perMinute/60 s, capacity
 * perMinute) and returns the tokens left, so every process learns the others' consumption.
 */
export class KeyRateQueries {
  private lastPurge = 0

  constructor(private readonly db: Db, private readonly processId: string, private readonly liveWindowMs: number) {}

  private get client() { return rawClient(this.db) }

  /** Push `spent` (key → requests accepted here since the last sync); the global tokens of those keys and the number of live processes. */
  async sync(spent: ReadonlyMap<string, number>, perMinute: number, now: number): Promise<{ tokens: Map<string, number>; processes: number }> {
    const tokens = new Map<string, number>()
    // This process's heartbeat rides in the first statement; a new bucket starts full minus what was spent.
    const entries: Array<[string, number]> = [[`${LIVE_PREFIX}${this.processId}`, 0], ...[...spent].map(([key, n]): [string, number] => [key, perMinute - n])]
    const statements: RawStatement[] = []
    for (let i = 0; i < entries.length; i += SYNC_CHUNK) {
      const chunk = entries.slice(i, i + SYNC_CHUNK)
      statements.push({
        sql: `insert into "key_rate_buckets" ("key", "tokens", "at") values ${chunk.map(() => '(?, ?, ?)').join(', ')} on conflict ("key") do update set `
          + `"tokens" = case when "key" like '${LIVE_PREFIX}%' then 0 else min(?, "tokens" + max(0, excluded."at" - "at") * ? / 60000.0) - (? - excluded."tokens") end, `
          + `"at" = max("at", excluded."at") returning "key", "tokens"`,
        args: [...chunk.flatMap(([key, t]) => [key, t, now]), perMinute, perMinute, perMinute],
      })
    }
    const upserts = statements.length
    statements.push({ sql: `select count(*) from "key_rate_buckets" where "key" like '${LIVE_PREFIX}%' and "at" > ?`, args: [now - this.liveWindowMs] })
    if (now - this.lastPurge > 60_000) {
      this.lastPurge = now
      statements.push({ sql: 'delete from "key_rate_buckets" where "at" < ?', args: [now - FORGET_AFTER_MS] })
    }
    // One transaction, marked as bookkeeping: no pass of this process waits for a heartbeat.
    const results = await this.client.batch(statements, 'write', { bookkeeping: true })
    for (const res of results.slice(0, upserts)) {
      for (const r of res.rows) {
        // libSQL rows are indexable, not iterable.
        const key = String(r[0])
        const left = Number(r[1])
        if (!key.startsWith(LIVE_PREFIX)) tokens.set(key, left)
      }
    }
    return { tokens, processes: Math.max(1, Number(results[upserts]!.rows[0]![0])) }
  }

  /** Drop this process's heartbeat (on shutdown): the others stop counting it at once. */
  async leave(): Promise<void> {
    await this.client.execute({ sql: 'delete from "key_rate_buckets" where "key" = ?', args: [`${LIVE_PREFIX}${this.processId}`] })
  }
}
