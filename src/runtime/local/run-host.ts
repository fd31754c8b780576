import type { CommandName, Observation } from '../../connectors/types.ts'
import type { NewEvent } from '../../core/domain.ts'
import { KeyedMutex } from '../../core/mutex.ts'
import type { Metrics } from '../../core/ports.ts'
import { Watcher } from '../../core/watcher.ts'
import { SeqConflictError, type RunRow, type Store } from '../../db/store.ts'
import { isStoreUnavailable } from '../../db/store-errors.ts'
import type { RunHosts } from '../../http/hosts.ts'
import { DueQueue } from './due-queue.ts'
import type { LocalLedger } from './ledger.ts'

/**
 * Ticks started and unsettled at once (default of `maxTicksInFlight`). Past it, due runs wait in
 * the due queue, earliest first: under overload every run's lag grows by the same amount, and
 * the requests of the API are not queued behind thousands of ticks (issue 26).
 */
export const MAX_TICKS_IN_FLIGHT = 512
/** When a tick fails for a reason that is not the upstream's (the store is down), retry after this, doubling per failure. */
const INFRA_RETRY_MS = 250
/** The longest wait between such retries (also capped at the lease TTL, so a run resumes within TTL + its poll interval). */
const INFRA_RETRY_MAX_MS = 5_000
/** Runs claimed per pass (a pass repeats at once while it fills up). */
const CLAIM_BATCH = 500

export interface LeaseOptions {
  /** This process's name in lease rows (unique per process). */
  owner: string
  /** Lease length; renewed every third of it, free runs claimed every quarter (at most each second). */
  ttlMs: number
  /** Ticks running at once at most; the other due runs wait, earliest due first. */
  maxTicksInFlight?: number
  /**
   * A counter that moves on every commit to the database (write-connection.ts
   * `changeCounterOf`). While it stands still, no run can have become free but by a lease
   * lapsing, so the claim query runs only when it moved, once a TTL after it last moved (when
   * every lease renewed before then has lapsed, if its holder died), and at least once a TTL;
   * an idle process then claims every TTL instead of every second (issue 26). Without it, every pass claims.
   */
  changes?: () => number
}

/**
 * In-process run host for Node and Deno: every run this process holds the lease of waits in
 * one due-time index (DueQueue: one timer for all of them, a bounded number of ticks in
 * flight, earliest due first) for its next tick; ticks and commands of a run are serialised. Several processes share one
 * database by leases: a run is watched only by the process whose lease row it carries, every
 * write of the run is fenced by the lease's token, leases are renewed in one statement and
 * free or lapsed ones (a dead or stopped process's) are claimed periodically.
 */
export class LocalRunHost implements RunHosts {
  /** Held runs waiting for their next tick, by due time (one timer for all). */
  private readonly due: DueQueue
  private readonly locks = new KeyedMutex()
  private readonly inFlight = new Set<Promise<unknown>>()
  /** Runs this process holds, by fencing token. */
  private readonly held = new Map<string, number>()
  /** When each held run was taken (a count of takes): a renewal only speaks for runs taken before it began. */
  private readonly takenAt = new Map<string, number>()
  private takes = 0
  /** Runs whose tick is running now (a held run is either here or in the due queue: the invariant the lease pass checks). */
  private readonly ticking = new Set<string>()
  /** Consecutive failed ticks per run (store faults), for the retry backoff. */
  private readonly failures = new Map<string, number>()
  /** Times the lease pass found a held run neither in the due queue nor ticking, and queued it (should stay 0). */
  repairs = 0
  private stopped = false
  private loop?: ReturnType<typeof setTimeout>
  private pass?: Promise<unknown>
  /** Until when every lease held is certainly ours (the last renewal's start + TTL). */
  private validUntil = 0
  private lastRenewAt = 0
  /** The database fault being reported, so it is logged once, not every pass. */
  private fault: string | null = null
  readonly lease: Required<Omit<LeaseOptions, 'changes'>> & Pick<LeaseOptions, 'changes'>
  /** The change counter at the last claim query, when that ran, and when the counter was last seen to move. */
  private lastClaim: { changes: number; at: number } | undefined
  private changedAt = 0
  /** Lease passes whose claim query was skipped (nothing committed, no lease could have lapsed); tests look. */
  claimsSkipped = 0

  constructor(
    private readonly store: Store,
    private readonly ledger: LocalLedger,
    readonly watcher: Watcher,
    private readonly now: () => number,
    private readonly log: (msg: string, extra?: Record<string, unknown>) => void = () => {},
    lease?: Partial<LeaseOptions>,
    private readonly metrics?: Metrics,
  ) {
    this.lease = {
      owner: lease?.owner ?? `proc-${Math.random().toString(36).slice(2, 10)}`, ttlMs: lease?.ttlMs ?? 10_000,
      maxTicksInFlight: Math.max(1, lease?.maxTicksInFlight ?? MAX_TICKS_IN_FLIGHT), changes: lease?.changes,
    }
    this.due = new DueQueue({ now: () => this.now(), run: (runId) => this.track(this.runTick(runId)), maxInFlight: this.lease.maxTicksInFlight })
  }

  /** Held runs due and waiting for a tick slot, and how late the earliest of them is (ms): the backlog /metrics shows. */
  backlog(): { due: number; lagMs: number } { return this.due.backlog() }

  /** Ticks running now. */
  get ticksInFlight(): number { return this.due.running }

  /** Runs held by this process now. */
  get heldRuns(): number { return this.held.size }

  /** Claim every free unfinished run (at start, after a restart) and keep claiming and renewing. */
  async resumeAll(): Promise<number> {
    const before = this.held.size
    // Leases under this process's name (RUNRELAY_INSTANCE_ID) are a dead predecessor's: free them now, not after the TTL.
    if (!this.loop) await this.store.leases.releaseAll(this.lease.owner)
    await this.leasePass()
    this.armLoop()
    return this.held.size - before
  }

  async create(row: Parameters<Store['runs']['create']>[0], created: NewEvent): Promise<RunRow> {
    // New runs are leased by the process that creates them, from their first row on.
    const now = this.now()
    const leased = { ...row, leaseOwner: this.lease.owner, leaseToken: 1, leaseExpiresAt: now + this.lease.ttlMs }
    const { run } = await this.ledger.create(leased, created)
    // A create that committed late (the database stalled for most of a TTL and the ledger's
    // retry landed after it, the API having answered 503 meanwhile) carries a lease about to
    // lapse, and the commit itself wakes the other processes' claim passes. Held here, its
    // trigger would go out on that lease while another process claims the run, finds the trigger
    // pending and fails it as trigger_outcome_unknown (db-faults.test.ts, a run made by the
    // retry of a request sent during a stall of about one TTL). It is left to the claim passes
    // instead, which lease it afresh once it lapses, as any run whose holder went away.
    if (leased.leaseExpiresAt - this.now() < this.lease.ttlMs / 2) return run
    this.take(run.id, 1)
    this.schedule(run.id, run.scheduledAt ?? this.now())
    return run
  }

  /**
   * Commands run where they arrive, held or not: the write is conditional on the run's seq
   * and fencing token as read, so it never merges with a concurrent write; the owner sees the
   * change on its next tick (its own write conflicts and re-reads). The lease does not move.
   */
  command(run: RunRow, name: CommandName, payload: unknown, by: string): Promise<RunRow> {
    return this.track(this.locks.run(run.id, async () => {
      const updated = await this.watcher.command(run.id, name, payload, by)
      if (updated.finishedAt) this.drop(run.id, false)
      else if (this.held.has(run.id)) this.schedule(run.id, updated.nextTickAt ?? this.now())
      return updated
    }))
  }

  push(run: RunRow, obs: Observation): Promise<void> {
    return this.track(this.locks.run(run.id, async () => {
      const updated = await this.watcher.push(run.id, obs)
      if (updated?.finishedAt) this.drop(run.id, false)
    }))
  }

  /** Arrange a tick at `at` unless an earlier one is already due (held runs only). */
  schedule(runId: string, at: number): void {
    if (this.stopped || !this.held.has(runId)) return
    this.due.schedule(runId, at)
  }

  private take(runId: string, token: number): void {
    this.held.set(runId, token)
    this.takenAt.set(runId, ++this.takes)
    this.ledger.hold(runId, token)
  }

  /** Stop watching a run (finished, or taken over by another process). */
  private drop(runId: string, lost: boolean): void {
    this.due.cancel(runId)
    this.held.delete(runId)
    this.takenAt.delete(runId)
    this.failures.delete(runId)
    this.ledger.release(runId)
    this.watcher.release(runId)
    if (lost) this.log('lease lost: run taken over by another process, stopped watching it here', { runId })
  }

  private async runTick(runId: string): Promise<void> {
    if (this.stopped || !this.held.has(runId)) return
    // A lease that may have lapsed (renewals failing or slow) is not acted on: another process may
    // hold it. The run is queued again all the same: the next lease pass either confirms the lease
    // (the tick then runs) or finds it lost and drops the run, which makes it claimable.
    if (this.now() >= this.validUntil) return this.retryLater(runId)
    this.ticking.add(runId)
    try {
      const { nextAt } = await this.locks.run(runId, () => this.watcher.tick(runId))
      this.failures.delete(runId)
      if (nextAt !== null) this.schedule(runId, nextAt)
      else this.drop(runId, false)
    } catch (err) {
      if (err instanceof SeqConflictError) {
        // Lost a race: with another writer of the run (a command elsewhere: re-read at once),
        // or with a process that took the run over (stop watching it).
        const lease = await this.store.leases.of(runId).catch(() => undefined)
        if (lease && (lease.owner !== this.lease.owner || lease.token !== this.held.get(runId))) return this.drop(runId, true)
        return this.schedule(runId, this.now())
      }
      const storeFault = isStoreUnavailable(err)
      if (storeFault) this.metrics?.inc('runrelay_store_errors_total', { where: 'tick' })
      // A store fault is logged once per run until a tick succeeds (not every retry); anything else each time.
      if (!storeFault || !this.failures.has(runId)) this.log('tick failed', { runId, error: String((err as Error)?.stack ?? err) })
      this.retryLater(runId)
    } finally {
      this.ticking.delete(runId)
    }
  }

  /** Tick a held run again after a backoff (store fault, or a lease not confirmed yet): never leave it out of the due queue. */
  private retryLater(runId: string): void {
    const n = (this.failures.get(runId) ?? 0) + 1
    this.failures.set(runId, n)
    const cap = Math.min(INFRA_RETRY_MAX_MS, Math.max(INFRA_RETRY_MS, this.lease.ttlMs / 2))
    const delay = Math.min(cap, INFRA_RETRY_MS * 2 ** Math.min(n - 1, 10))
    this.schedule(runId, this.now() + delay * (0.8 + 0.4 * Math.random()))
  }

  private armLoop(): void {
    if (this.stopped) return
    const every = Math.max(50, Math.min(1_000, Math.floor(this.lease.ttlMs / 4)))
    this.loop = setTimeout(() => {
      this.pass = this.leasePass().finally(() => { this.pass = undefined; this.armLoop() })
    }, every)
  }

  /** Renew (every third of the TTL), check the invariant, then claim free runs; on a database fault, ticks wait until it is back. */
  private async leasePass(): Promise<void> {
    const { owner, ttlMs } = this.lease
    const started = this.now()
    try {
      if (started - this.lastRenewAt >= ttlMs / 3) {
        const takesBefore = this.takes
        const kept = await this.store.leases.renew(owner, started, started + ttlMs)
        this.lastRenewAt = started
        this.validUntil = started + ttlMs
        const still = new Map(kept.map((r) => [r.id, r.token]))
        // A run created or claimed while the renewal was on its way may have committed after it:
        // its absence says nothing (it was dropped as lost, and an answer in flight with it).
        for (const [id, token] of [...this.held]) if (still.get(id) !== token && (this.takenAt.get(id) ?? 0) <= takesBefore) this.drop(id, true)
        // Rows under our name that this process does not hold (a create or claim whose answer was
        // lost to a fault, though it committed): the renewal just kept them from anyone else, so
        // watch them here, or they would be renewed for ever and never ticked.
        for (const { id, token } of kept) {
          if (this.held.has(id)) continue
          this.take(id, token)
          this.schedule(id, this.now())
          this.repair(id, 'leased here without being held')
        }
      }
      // The invariant: every held run is in the due queue or has a tick running.
      for (const id of this.held.keys()) {
        if (this.due.has(id) || this.ticking.has(id)) continue
        this.schedule(id, this.now())
        this.repair(id, 'held without a timer')
      }
      if (!this.claimDue()) { this.claimsSkipped++; return this.recovered() }
      const changes = this.lease.changes?.()
      for (;;) {
        if (this.stopped) return
        const claimed = await this.store.leases.claim(owner, this.now(), this.now() + ttlMs, CLAIM_BATCH)
        for (const run of claimed) {
          this.take(run.id, run.leaseToken)
          this.schedule(run.id, run.status === 'scheduled' && run.scheduledAt ? run.scheduledAt : run.nextTickAt ?? this.now())
        }
        if (claimed.length && this.fault === null) this.log('runs claimed', { runs: claimed.length, owner })
        if (claimed.length < CLAIM_BATCH) break
      }
      // Only a claim that went through is the reference of a skip; the counter was read before it, so a commit during it makes the next pass claim.
      this.lastClaim = changes === undefined || Number.isNaN(changes) ? undefined : { changes, at: started }
      this.recovered()
    } catch (err) {
      this.lastClaim = undefined
      this.metrics?.inc('runrelay_store_errors_total', { where: 'lease' })
      const message = String((err as Error)?.message ?? err)
      if (this.fault === null) {
        this.log('lease renewal failed (database unreachable?): ticks wait from when the leases may lapse; runs nobody else claims meanwhile are kept', {
          owner, runs: this.held.size, lapseAt: new Date(this.validUntil).toISOString(), error: message,
        })
      }
      this.fault = message
      // Runs stay held, their ticks deferred (runTick) while the leases may have lapsed: in the
      // database a lapsed lease is claimable by anyone, so nothing is stranded. When the database
      // answers again, the renewal keeps those nobody claimed meanwhile (same name, same token:
      // an answer in hand is then stored, not lost) and reports the others, which are dropped.
    }
  }

  /** The database answered a pass: report the end of a fault once. */
  private recovered(): void {
    if (this.fault !== null) this.log('database reachable again: renewing and claiming leases', { owner: this.lease.owner, runs: this.held.size })
    this.fault = null
  }

  /**
   * Whether this pass must query for free runs. A run becomes claimable by a commit (a lease
   * released, a run created unleased, a holder's renewal that stopped: its last renewal was a
   * commit) or by time, when a lease lapses: at most one TTL after the last commit anyone made,
   * since a live holder renews (commits) before then. So with the counter unchanged since the
   * last claim, the claim is skipped unless a TTL has passed since the counter last moved (and
   * no claim ran since then), or since the last claim (processes with a longer TTL).
   */
  private claimDue(): boolean {
    const read = this.lease.changes
    const last = this.lastClaim
    const now = this.now()
    // No reference yet (the first pass, or after a fault): leases renewed just before now lapse within a TTL from now.
    if (!read || !last) { this.changedAt = now; return true }
    const changes = read()
    if (Number.isNaN(changes) || changes !== last.changes) { this.changedAt = now; return true }
    const { ttlMs } = this.lease
    if (now - last.at >= ttlMs) return true
    return last.at < this.changedAt + ttlMs && now >= this.changedAt + ttlMs
  }

  private repair(runId: string, why: string): void {
    this.repairs++
    this.log('lease pass: run given a timer', { runId, why })
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.inFlight.add(p)
    const done = () => this.inFlight.delete(p)
    p.then(done, done)
    return p
  }

  /** Stop timers, wait for ticks and commands in flight to be written, then hand every lease back at once. */
  async stop(): Promise<void> {
    this.stopped = true
    if (this.loop) clearTimeout(this.loop)
    this.due.stop()
    await Promise.allSettled([...this.inFlight])
    await this.pass
    try {
      const released = await this.store.leases.releaseAll(this.lease.owner)
      this.log('leases released', { owner: this.lease.owner, runs: released })
    } catch (err) {
      this.log('could not release leases: other processes take the runs over when they lapse', { owner: this.lease.owner, error: String((err as Error)?.message ?? err) })
    }
    for (const id of [...this.held.keys()]) this.drop(id, false)
  }
}
