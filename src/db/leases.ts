import { and, eq, inArray, isNull, lt, or, sql } from 'drizzle-orm'
import type { Db } from './db.ts'
import { runs } from './schema.ts'
import type { RunRow } from './runs.ts'

/** An unfinished run whose lease is free: never taken, released, or lapsed before `now`. */
const claimable = (now: number | ReturnType<typeof sql.placeholder>) =>
  and(isNull(runs.finishedAt), or(isNull(runs.leaseExpiresAt), lt(runs.leaseExpiresAt, now)))

/** Run leases of the local runtimes: who watches which run, with a fencing token every run write checks. */
export class LeaseStore {
  constructor(private readonly db: Db) {}

  private probeBuilt?: ReturnType<LeaseStore['buildProbe']>
  private probe() { return (this.probeBuilt ??= this.buildProbe()) }
  private buildProbe() {
    return this.db.select({ id: runs.id }).from(runs).where(claimable(sql.placeholder('now'))).limit(1).prepare()
  }

  /**
   * Renew every lease `owner` holds on unfinished runs, in one statement. Returns the runs
   * still held and their tokens: a run held before and missing now (or with another token)
   * was taken over.
   */
  async renew(owner: string, _now: number, expiresAt: number): Promise<Array<{ id: string; token: number }>> {
    // A lease that lapsed while the database was unreachable is renewed too if nobody claimed
    // it meanwhile: the row still carries our name and our token, so no other process has
    // written as its owner, and a claim and this renewal are both conditional single-row
    // writes (whichever commits first wins). A lapsed lease someone claimed has their name.
    // Never shortened: a renewal that reaches the database late (sent before a stall, run after
    // it) would otherwise pull back a lease set since by a create or a newer renewal, and another
    // process could claim the run mid-trigger (db-faults.test.ts, a stall of about one TTL).
    return this.db.update(runs).set({ leaseExpiresAt: sql`max(coalesce(${runs.leaseExpiresAt}, 0), ${expiresAt})` })
      .where(and(eq(runs.leaseOwner, owner), isNull(runs.finishedAt))).returning({ id: runs.id, token: runs.leaseToken })
  }

  /**
   * Take up to `limit` unfinished runs whose lease is free or lapsed, bumping each fencing
   * token (indexed by runs_lease). The condition is repeated on the row written, so two
   * processes claiming at once never both get a run.
   */
  async claim(owner: string, now: number, expiresAt: number, limit: number): Promise<RunRow[]> {
    // Most passes find nothing to claim: a read says so without taking the database's write lock
    // (every process claims every second). A run freed just after the read is claimed next pass.
    const [any] = await this.probe().all({ now })
    if (!any) return []
    const candidates = this.db.select({ id: runs.id }).from(runs).where(claimable(now)).limit(limit)
    return this.db.update(runs).set({ leaseOwner: owner, leaseExpiresAt: expiresAt, leaseToken: sql`${runs.leaseToken} + 1` })
      .where(and(inArray(runs.id, candidates), claimable(now))).returning()
  }

  /** Give up every lease of `owner` at once (graceful stop): other processes claim the runs on their next pass. */
  async releaseAll(owner: string): Promise<number> {
    const rows = await this.db.update(runs).set({ leaseOwner: null, leaseExpiresAt: null })
      .where(eq(runs.leaseOwner, owner)).returning({ id: runs.id })
    return rows.length
  }

  /** Give up one run's lease if `owner` still holds it with `token`. */
  async release(runId: string, owner: string, token: number): Promise<void> {
    await this.db.update(runs).set({ leaseOwner: null, leaseExpiresAt: null })
      .where(and(eq(runs.id, runId), eq(runs.leaseOwner, owner), eq(runs.leaseToken, token)))
  }

  /** Who holds a run's lease now. */
  async of(runId: string): Promise<{ owner: string | null; token: number; expiresAt: number | null } | undefined> {
    const [r] = await this.db.select({ owner: runs.leaseOwner, token: runs.leaseToken, expiresAt: runs.leaseExpiresAt }).from(runs).where(eq(runs.id, runId))
    return r
  }
}
