import type { NewEvent, RunEvent } from '../../core/domain.ts'
import { countCommitted } from '../../core/metrics.ts'
import { noMetrics, noTracer, type Metrics, type Publisher, type RunLedger, type SpanParent, type Tracer } from '../../core/ports.ts'
import { copyRunRow, type PreparedWrite, type RunPatch, type RunRow, type Store } from '../../db/store.ts'
import { afterIo } from './next-turn.ts'

/** Most writes committed in one transaction. */
const MAX_GROUP = 256

/**
 * Rows kept for runs this process does not hold (a command's write of another process's run,
 * a create before its lease): the held runs' rows are kept beside them, whatever their number.
 */
const MAX_FRESH_UNHELD = 1_024

/**
 * Columns a poll that saw nothing new changes only as bookkeeping: the count of unchanged polls
 * (adaptive polling) and the next tick time. Such a change of a held run is kept in memory, not
 * written (see `LocalLedger.commit`).
 */
const BOOKKEEPING: ReadonlySet<keyof RunPatch> = new Set<keyof RunPatch>(['polls', 'nextTickAt'])
/**
 * A held run's row is written at least this often while it is polled without change, so what
 * the API shows (next_poll_at, polls) and what another process resumes from are at most this
 * old, and a change made by another process (a command) is noticed by a conflicting write.
 */
export const MAX_UNSTORED_MS = 30_000

/** Whether `patch` would store nothing but bookkeeping over `run` (every other defined field equal). */
function bookkeepingOnly(run: RunRow, patch: RunPatch): boolean {
  for (const k of Object.keys(patch) as Array<keyof RunPatch>) {
    const v: unknown = patch[k]
    if (v === undefined || BOOKKEEPING.has(k)) continue
    const was: unknown = run[k]
    if (v === was) continue
    // JSON columns (connector state, raw answer): the same content is no change.
    if (v === null || was === null || typeof v !== 'object' || typeof was !== 'object' || JSON.stringify(v) !== JSON.stringify(was)) return false
  }
  return true
}

/** A committed write's outcome, its result type closed over (writes of different results share a group). */
interface Outcome {
  run: RunRow
  /** The events to publish. */
  events: () => RunEvent[]
  /** Settle the caller's promise with the typed result. */
  resolve: () => void
}

interface Pending {
  runId: string
  tenantId: string
  prepare: () => PreparedWrite<Outcome>
  reject: (err: unknown) => void
  /** The write's persist span (tracing only): its publish is a child of it. */
  span: SpanParent | undefined
}

/**
 * Persist, then publish, one group at a time: the feed's order (event ids) is then the order
 * subscribers receive, so resuming a feed after an id never skips an event that was still in
 * flight. Writes that arrive while a group is being written wait and go together in the next
 * one, in a single transaction (group commit): under load, runs share one commit instead of
 * queueing for one each. A group holds at most one write per run, so a run's writes keep
 * their order; if a group fails, its writes are retried one by one so each gets its own
 * outcome (a lost seq race fails only its run).
 */
export class LocalLedger implements RunLedger {
  private queue: Pending[] = []
  /**
   * Creates (an API trigger, a schedule) waiting for a group: they go first in the next one,
   * ahead of the watchers' queued writes, so a trigger is not answered behind thousands of
   * polls' commits (issue 26: the API must not queue behind the watchers). A create is its run's
   * first write, so no write of the same run can be ahead of it: every run's order is kept.
   */
  private creates: Pending[] = []
  private flushing = false
  /**
   * The row each unfinished run had after its last write here, for the next read of it (taken
   * once, then read from the store again): a run's first tick right after its creation, or a
   * command right after a tick, needs no read. Exact, because every write of a run goes through
   * this ledger, one at a time per run (the host's per-run lock), and a write's row is computed
   * from the row it was conditioned on; a failed write drops it.
   */
  private readonly fresh = new Map<string, RunRow>()
  /**
   * Fencing tokens of the runs this process holds the lease of (set by the run host). A write
   * of a held run carries the token held; any other write carries the token it read, so a
   * write never lands on a run taken over since.
   */
  private readonly fences = new Map<string, number>()

  /** This process now holds `runId` with fencing token `token`. */
  hold(runId: string, token: number): void { this.fences.set(runId, token) }

  /** Whether this process holds `runId` (the run host has its lease). */
  holds(runId: string): boolean { return this.fences.has(runId) }

  /** Polls that changed nothing and were kept in memory instead of written (see `commit`). */
  skipped = 0

  /** This process no longer holds `runId`: forget its token and its last row. */
  release(runId: string): void { this.fences.delete(runId); this.fresh.delete(runId) }

  private readonly metrics: Metrics
  private readonly tracer: Tracer

  constructor(private readonly store: Store, private readonly publisher: Publisher, private readonly now: () => number, telemetry: { metrics?: Metrics; tracer?: Tracer } = {}) {
    this.metrics = telemetry.metrics ?? noMetrics
    this.tracer = telemetry.tracer ?? noTracer
  }

  getRun(runId: string): Promise<RunRow | undefined> {
    const row = this.fresh.get(runId)
    // A held run's row stays (a tick that ends without a write, one fired a few ms early, must not
    // make the next read go to the store, where an unwritten poll's bookkeeping is not); any
    // write of the run drops it first and keeps it again only once committed.
    if (row) { if (!this.fences.has(runId)) this.fresh.delete(runId); return Promise.resolve(row) }
    return this.store.runs.getById(runId)
  }

  /**
   * Sized to the runs in flight: a held run's row is always kept (it leaves with `release`),
   * so a tick never reads its run back through the store, however many runs are held (with a
   * fixed cap, past it every tick read its row again: the step in CPU per poll past 1,024
   * runs, issue 26). Only rows of runs not held here are bounded, oldest first.
   */
  private remember(run: RunRow): void {
    this.fresh.delete(run.id)
    if (run.finishedAt) return
    if (!this.fences.has(run.id) && this.fresh.size >= this.fences.size + MAX_FRESH_UNHELD) {
      for (const id of this.fresh.keys()) if (!this.fences.has(id)) { this.fresh.delete(id); break }
    }
    this.fresh.set(run.id, run)
  }

  /**
   * Persist a change of `run`, then publish its events. A poll that saw nothing new (no event,
   * nothing stored but `polls` and `nextTickAt`) of a run held here is not written: the row with
   * that bookkeeping is kept in memory for the run's next tick, and the stored row keeps the
   * last change's values (next_poll_at and polls as of then) until a change, or until
   * MAX_UNSTORED_MS after the last write, whichever comes first. Nothing is published either
   * way, so "persisted before published" is untouched; a process taking the run over resumes
   * from the stored row (it polls at once and counts unchanged polls from the stored count).
   */
  commit(run: RunRow, patch: RunPatch, events: NewEvent[]): Promise<{ run: RunRow; events: RunEvent[] }> {
    if (events.length === 0 && this.fences.has(run.id) && !run.finishedAt && this.now() - run.updatedAt < MAX_UNSTORED_MS && bookkeepingOnly(run, patch)) {
      const kept = copyRunRow(run)
      kept.polls = patch.polls ?? run.polls
      if (patch.nextTickAt !== undefined) kept.nextTickAt = patch.nextTickAt
      this.skipped++
      this.remember(kept)
      return Promise.resolve({ run: kept, events: [] })
    }
    const fence = this.fences.get(run.id) ?? run.leaseToken
    return this.enqueue(run.id, run.tenantId, () => this.store.runs.prepareChange(run, patch, events, this.now(), fence), (r) => r.events)
  }

  create(...args: Parameters<Store['runs']['create']>): Promise<Awaited<ReturnType<Store['runs']['create']>>> {
    return this.enqueue(args[0].id, args[0].tenantId, () => this.store.runs.prepareCreate(...args), (r) => [r.event], true)
  }

  private enqueue<T extends { run: RunRow }>(runId: string, tenantId: string, prepare: () => PreparedWrite<T>, events: (result: T) => RunEvent[], create = false): Promise<T> {
    // The persist span runs from the queue to the commit; it is a child of the tick or request that wrote.
    return this.tracer.span('runrelay.persist', { 'runrelay.run_id': runId }, () => new Promise<T>((resolve, reject) => {
      const typed = (): PreparedWrite<Outcome> => {
        const w = prepare()
        return {
          ...w,
          finish: (updated, ids) => {
            const value = w.finish(updated, ids)
            return { run: value.run, events: () => events(value), resolve: () => resolve(value) }
          },
        }
      }
      ;(create ? this.creates : this.queue).push({ runId, tenantId, prepare: typed, reject, span: this.tracer.current() })
      if (!this.flushing) {
        this.flushing = true
        // After the I/O of this loop iteration: writes made by every request and tick handled
        // in it share the first group. The SQLite driver writes synchronously, so nothing can
        // queue while a group is written: without this wait, only writes of the same microtask
        // run would ever share a commit.
        afterIo(() => void this.flush())
      }
    }))
  }

  private async flush(): Promise<void> {
    try {
      while (this.queue.length || this.creates.length) {
        const group: Pending[] = []
        const rest: Pending[] = []
        const runs = new Set<string>()
        // Creates first (each the first write of its run), then the queue in arrival order, one write per run.
        const creates = this.creates.splice(0, MAX_GROUP)
        for (const p of creates) { group.push(p); runs.add(p.runId) }
        for (const p of this.queue) {
          if (group.length < MAX_GROUP && !runs.has(p.runId)) { group.push(p); runs.add(p.runId) }
          else rest.push(p)
        }
        this.queue = rest
        await this.write(group)
      }
    } finally {
      this.flushing = false
    }
  }

  private async write(group: Pending[]): Promise<void> {
    let results: Array<{ value?: Outcome; error?: unknown }>
    for (const p of group) this.fresh.delete(p.runId)
    try {
      results = await this.store.runs.writeBatch(group.map((p) => p.prepare()))
    } catch (err) {
      if (group.length === 1) return group[0]!.reject(err)
      for (const p of group) await this.write([p])
      return
    }
    group.forEach((p, i) => {
      const r = results[i]!
      if (r.error !== undefined || r.value === undefined) return p.reject(r.error)
      const outcome = r.value
      this.remember(outcome.run)
      try {
        const events = outcome.events()
        // A write without events (a trigger attempt recorded before its request) has nothing to publish.
        if (events.length > 0) {
          countCommitted(this.metrics, events)
          this.tracer.span('runrelay.publish', { 'runrelay.run_id': p.runId, 'runrelay.events': events.length }, () => this.publisher.publish(p.tenantId, events), p.span)
          this.metrics.inc('runrelay_events_published_total', undefined, events.length)
        }
      } catch {
        // The write is durable: a subscriber that fails catches up from the store on reconnect.
      }
      outcome.resolve()
    })
  }
}
