import type { CommandName, Observation } from '../../connectors/types.ts'
import type { NewEvent } from '../../core/domain.ts'
import { KeyedMutex } from '../../core/mutex.ts'
import { Watcher } from '../../core/watcher.ts'
import { SeqConflictError, type RunRow, type Store } from '../../db/store.ts'
import type { RunHosts } from '../../http/hosts.ts'
import type { LocalLedger } from './ledger.ts'

const MAX_TIMER_MS = 2 ** 31 - 1
/** When a tick fails for a reason that is not the upstream's (the store is down), retry after this. */
const INFRA_RETRY_MS = 2_000

/**
 * In-process run host for Node and Deno: one timer per unfinished run at its next tick,
 * ticks and commands of a run serialised, and on start-up every unfinished run resumed.
 */
export class LocalRunHost implements RunHosts {
  private readonly timers = new Map<string, { at: number; timer: ReturnType<typeof setTimeout> }>()
  private readonly locks = new KeyedMutex()
  private readonly inFlight = new Set<Promise<unknown>>()
  private stopped = false

  constructor(
    private readonly store: Store,
    private readonly ledger: LocalLedger,
    readonly watcher: Watcher,
    private readonly now: () => number,
    private readonly log: (msg: string, extra?: Record<string, unknown>) => void = () => {},
  ) {}

  /** Watch every run that is not finished (after a restart). */
  async resumeAll(): Promise<number> {
    const runs = await this.store.listUnfinishedRuns()
    for (const run of runs) this.schedule(run.id, run.nextTickAt ?? this.now())
    return runs.length
  }

  async create(row: Parameters<Store['createRun']>[0], created: NewEvent): Promise<RunRow> {
    const { run } = await this.ledger.create(row, created)
    this.schedule(run.id, run.scheduledAt ?? this.now())
    return run
  }

  command(run: RunRow, name: CommandName, payload: unknown, by: string): Promise<RunRow> {
    return this.track(this.locks.run(run.id, async () => {
      const updated = await this.watcher.command(run.id, name, payload, by)
      if (updated.finishedAt) this.unschedule(run.id)
      else this.schedule(run.id, updated.nextTickAt ?? this.now())
      return updated
    }))
  }

  push(run: RunRow, obs: Observation): Promise<void> {
    return this.track(this.locks.run(run.id, async () => {
      const updated = await this.watcher.push(run.id, obs)
      if (updated?.finishedAt) this.unschedule(run.id)
    }))
  }

  /** Arrange a tick at `at` unless an earlier one is already due. */
  schedule(runId: string, at: number): void {
    if (this.stopped) return
    const existing = this.timers.get(runId)
    if (existing && existing.at <= at) return
    if (existing) clearTimeout(existing.timer)
    const delay = Math.min(MAX_TIMER_MS, Math.max(0, at - this.now()))
    const timer = setTimeout(() => {
      this.timers.delete(runId)
      void this.track(this.runTick(runId))
    }, delay)
    this.timers.set(runId, { at, timer })
  }

  private unschedule(runId: string): void {
    const t = this.timers.get(runId)
    if (t) clearTimeout(t.timer)
    this.timers.delete(runId)
  }

  private async runTick(runId: string): Promise<void> {
    if (this.stopped) return
    try {
      const { nextAt } = await this.locks.run(runId, () => this.watcher.tick(runId))
      if (nextAt !== null) this.schedule(runId, nextAt)
    } catch (err) {
      // A lost race re-reads at once; anything else (store unavailable, a bug) retries later.
      const retryIn = err instanceof SeqConflictError ? 0 : INFRA_RETRY_MS
      if (!(err instanceof SeqConflictError)) this.log('tick failed', { runId, error: String((err as Error)?.stack ?? err) })
      this.schedule(runId, this.now() + retryIn)
    }
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.inFlight.add(p)
    const done = () => this.inFlight.delete(p)
    p.then(done, done)
    return p
  }

  /** Stop timers and wait for ticks and commands in flight to be written. */
  async stop(): Promise<void> {
    this.stopped = true
    for (const t of this.timers.values()) clearTimeout(t.timer)
    this.timers.clear()
    await Promise.allSettled([...this.inFlight])
  }
}
