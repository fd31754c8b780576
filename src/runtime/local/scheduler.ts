import type { Config } from '../../config.ts'
import type { Clock } from '../../core/ports.ts'
import type { Store } from '../../db/store.ts'
import type { ScheduleEngine } from '../../services/scheduling.ts'
import type { WebhookDispatcher } from '../../services/webhook-dispatcher.ts'

const RETENTION_EVERY_MS = 3_600_000
/**
 * With a change counter, a pass that could find nothing new (no commit to the file since the
 * last pass, nothing due by then) is skipped; a full pass still runs at least this often, for
 * what time alone makes due without a commit and without a known due time (another
 * process's webhook delivery lease that lapsed).
 */
const QUIET_FULL_PASS_MS = 30_000
const MAX_TIMER_MS = 2 ** 31 - 1

export interface LocalSchedulerDeps {
  store: Store
  clock: Clock
  config: Pick<Config, 'RUNRELAY_JOBS_INTERVAL_MS'>
  /** The runtime's services, built by the composition root (runtime/compose.ts composeServices). */
  schedules: ScheduleEngine
  webhooks: WebhookDispatcher
  log?: (msg: string, extra?: Record<string, unknown>) => void
  /**
   * A counter that moves on every commit to the database, this process's included
   * (write-connection.ts `changeCounterOf`): while it stands still and nothing is due, a pass
   * has nothing to find and is skipped (the idle cost, issue 26). Without it, every pass queries.
   */
  changes?: () => number
}

/**
 * Background jobs on Node and Deno, one in-process timer loop over the store: schedules
 * (ScheduleEngine.runDueSchedules), webhook deliveries (WebhookDispatcher.runOnce) and,
 * hourly, retention. The logic is portable; only the timers live here. Passes never overlap,
 * and several instances over one database are safe (every step is claimed in the store).
 */
export class LocalScheduler {
  readonly schedules: ScheduleEngine
  readonly webhooks: WebhookDispatcher
  private timer: ReturnType<typeof setTimeout> | undefined
  private running: Promise<void> | undefined
  private pruning: Promise<void> | undefined
  private stopped = false
  private lastRetention = 0
  private readonly intervalMs: number
  /** The change counter when the last full pass started, when it started, and the earliest due time it found (null: none). */
  private quiet: { changes: number; at: number; wakeAt: number | null } | undefined
  /** Passes skipped because nothing had changed (tests look). */
  skipped = 0

  constructor(private readonly deps: LocalSchedulerDeps) {
    this.intervalMs = deps.config.RUNRELAY_JOBS_INTERVAL_MS
    this.schedules = deps.schedules
    this.webhooks = deps.webhooks
  }

  /** One schedule pass now (before runs are resumed), then the loop. */
  async start(): Promise<void> {
    if (this.stopped || this.timer || this.running) return
    this.lastRetention = this.deps.clock.now() - RETENTION_EVERY_MS + 60_000 // first retention pass a minute after start
    await this.schedules.runDueSchedules().catch((err) => this.deps.log?.('schedules pass failed', { error: String(err?.stack ?? err) }))
    this.arm(0)
  }

  private arm(delay: number): void {
    if (this.stopped) return
    this.timer = setTimeout(() => { this.timer = undefined; void this.pass() }, Math.min(MAX_TIMER_MS, Math.max(0, delay)))
  }

  private pass(): Promise<void> {
    this.running = (async () => {
      let wakeAt: number | null = null
      const now = this.deps.clock.now()
      const earliest = (t: number | null) => { if (t !== null && (wakeAt === null || t < wakeAt)) wakeAt = t }
      // Read before the pass: a commit made during it makes the next pass run.
      const changes = this.deps.changes?.()
      const q = this.quiet
      if (q && changes === q.changes && now - q.at < QUIET_FULL_PASS_MS && (q.wakeAt === null || q.wakeAt > now)) {
        // Nothing committed since the last full pass, and nothing it found is due yet: the same queries would find the same.
        this.skipped++
        wakeAt = q.wakeAt
      } else {
        let failed = false
        try {
          earliest((await this.schedules.runDueSchedules(now)).wakeAt)
        } catch (err) { failed = true; this.deps.log?.('schedules pass failed', { error: String((err as Error)?.stack ?? err) }) }
        try {
          earliest((await this.webhooks.runOnce(now)).wakeAt)
        } catch (err) { failed = true; this.deps.log?.('webhooks pass failed', { error: String((err as Error)?.stack ?? err) }) }
        // A failed pass is never the reference of a skip (its work may be left undone).
        this.quiet = changes === undefined || Number.isNaN(changes) || failed ? undefined : { changes, at: now, wakeAt }
      }
      if (now - this.lastRetention >= RETENTION_EVERY_MS && !this.pruning) {
        this.lastRetention = now
        // Off the loop: it deletes in small batches and yields between them, so nothing waits on it.
        this.pruning = this.deps.store.pruneExpired(now, { stopped: () => this.stopped })
          .then((pruned) => { if (pruned.runs || pruned.deliveries) this.deps.log?.('retention pruned', { ...pruned }) })
          .catch((err) => this.deps.log?.('retention failed', { error: String(err?.stack ?? err) }))
          .finally(() => { this.pruning = undefined })
      }
      // New events appear without telling us: poll at the interval, sooner when something is due sooner.
      // Something still due after a pass could not be done now (a failing store): wait a full interval, never spin.
      const dueIn = wakeAt === null ? this.intervalMs : (wakeAt as number) - this.deps.clock.now()
      const delay = dueIn > 0 ? Math.min(this.intervalMs, dueIn) : this.intervalMs
      this.running = undefined
      this.arm(delay)
    })()
    return this.running
  }

  /** Stop the loop and wait for a pass in flight. */
  async stop(): Promise<void> {
    this.stopped = true
    if (this.timer) clearTimeout(this.timer)
    this.timer = undefined
    await this.running
    await this.pruning
  }
}
