import { TICK_TOLERANCE_MS } from '../../core/watcher.ts'
import { afterIo } from './next-turn.ts'

/** Longest single timer (setTimeout's limit); a later due time re-arms on the way. */
const MAX_TIMER_MS = 2 ** 31 - 1

export interface DueQueueOptions {
  now: () => number
  /** Start the work of `key` (a run's tick); the queue counts it in flight until the promise settles. */
  run: (key: string) => Promise<unknown>
  /** At most this many started and unsettled at once; the rest wait, earliest due first. */
  maxInFlight: number
  /** Due times closer than this fire together (one timer callback for a burst of runs); at most the watcher's TICK_TOLERANCE_MS. */
  slackMs?: number
  /** At most this many started per turn of the event loop (default MAX_STARTS_PER_TURN); the rest start in the next turns. */
  maxStartsPerTurn?: number
}

/**
 * Ticks started per turn of the event loop. When the runs due outrun the CPU, a slot freed was
 * filled at once, so every turn handled as many answers as had come in (hundreds, ~100 ms of
 * work) and an API request waited that long at each of its turns (a trigger takes ~6: its
 * commits and its upstream requests). Starting at most this many per turn keeps a turn to a few
 * ms of watcher work at ~250 µs a tick, whatever the backlog: the API does not queue behind
 * the watchers (issue 26). Throughput is unchanged: turns get shorter, not fewer ticks done.
 * Side by side at 5,000 runs @ 1 s (bench watch): 8, 16 and 32 poll alike (4,300–4,750/s,
 * noise); trigger p99 under that load 69–91 ms with them, 134 ms with 64.
 */
export const MAX_STARTS_PER_TURN = 16

/**
 * One timer for every run a process watches, instead of one per run: a due-time index (binary
 * min-heap on the due time, a map from key to its entry for rescheduling) with a single
 * `setTimeout` armed at the earliest due time. When it fires, due entries start in due-time
 * order up to `maxInFlight`; past that, they wait in the heap, so under overload every run's
 * lag grows by the same amount (no starvation: the earliest due always goes first), the
 * backlog is bounded by the runs held, and `backlog()` says how far behind the process is
 * (for `/metrics`). `schedule` keeps the earlier of two due times, as the run host's timers do.
 */
export class DueQueue {
  private heap: Array<{ key: string; at: number; pos: number }> = []
  private readonly entries = new Map<string, { key: string; at: number; pos: number }>()
  private timer: ReturnType<typeof setTimeout> | undefined
  private timerAt = Infinity
  private inFlight = 0
  private stopped = false
  private readonly slackMs: number
  private readonly maxStartsPerTurn: number
  /** Started in this turn of the loop; reset after its I/O (`afterIo`), which starts the next ones. */
  private startedThisTurn = 0

  constructor(private readonly opts: DueQueueOptions) {
    this.slackMs = opts.slackMs ?? TICK_TOLERANCE_MS
    this.maxStartsPerTurn = Math.max(1, opts.maxStartsPerTurn ?? MAX_STARTS_PER_TURN)
  }

  /** Runs waiting (due or not). */
  get size(): number { return this.entries.size }

  /** Whether `key` waits in the queue (due or not). */
  has(key: string): boolean { return this.entries.has(key) }

  /** Started and not yet settled. */
  get running(): number { return this.inFlight }

  /** Entries already due and waiting for a slot, and how late the earliest of them is (ms). */
  backlog(): { due: number; lagMs: number } {
    const now = this.opts.now()
    let due = 0
    for (const e of this.heap) if (e.at <= now) due++
    return { due, lagMs: this.heap.length && this.heap[0]!.at <= now ? now - this.heap[0]!.at : 0 }
  }

  /** Run `key` at `at`, unless it is already due earlier. */
  schedule(key: string, at: number): void {
    if (this.stopped) return
    const e = this.entries.get(key)
    if (e) {
      if (e.at <= at) return
      e.at = at
      this.up(e.pos)
    } else {
      const n = { key, at, pos: this.heap.length }
      this.entries.set(key, n)
      this.heap.push(n)
      this.up(n.pos)
    }
    this.arm()
  }

  /** Forget `key` (finished, or no longer held). */
  cancel(key: string): void {
    const e = this.entries.get(key)
    if (!e) return
    this.entries.delete(key)
    this.removeAt(e.pos)
  }

  /** Stop firing; entries are forgotten. */
  stop(): void {
    this.stopped = true
    clearTimeout(this.timer)
    this.timer = undefined
    this.heap = []
    this.entries.clear()
  }

  private arm(): void {
    // At the turn's cap, the turn's end starts what is due next (see fire).
    if (this.stopped || this.inFlight >= this.opts.maxInFlight || this.startedThisTurn >= this.maxStartsPerTurn) return
    const first = this.heap[0]
    if (!first) { clearTimeout(this.timer); this.timer = undefined; this.timerAt = Infinity; return }
    // A timer armed for no later than the earliest due time (within the slack) stays.
    if (this.timer && this.timerAt <= first.at + this.slackMs) return
    clearTimeout(this.timer)
    this.timerAt = first.at
    this.timer = setTimeout(() => { this.timer = undefined; this.timerAt = Infinity; this.fire() }, Math.min(MAX_TIMER_MS, Math.max(0, first.at - this.opts.now())))
  }

  private fire(): void {
    const limit = this.opts.now() + this.slackMs
    while (!this.stopped && this.inFlight < this.opts.maxInFlight && this.startedThisTurn < this.maxStartsPerTurn && this.heap.length && this.heap[0]!.at <= limit) {
      const e = this.heap[0]!
      this.entries.delete(e.key)
      this.removeAt(0)
      this.inFlight++
      if (this.startedThisTurn++ === 0) afterIo(() => { this.startedThisTurn = 0; this.fire() })
      let p: Promise<unknown>
      try { p = this.opts.run(e.key) } catch (err) { p = Promise.reject(err) }
      p.catch(() => {}).finally(() => {
        this.inFlight--
        // A slot freed: the earliest due entry (if any) starts now, else the timer is armed again.
        this.fire()
      })
    }
    this.arm()
  }

  private removeAt(i: number): void {
    const last = this.heap.pop()!
    if (i === this.heap.length) return
    this.heap[i] = last
    last.pos = i
    this.down(i)
    this.up(last.pos)
  }

  private up(i: number): void {
    const h = this.heap
    const e = h[i]!
    while (i > 0) {
      const p = (i - 1) >> 1
      if (h[p]!.at <= e.at) break
      h[i] = h[p]!; h[i]!.pos = i
      i = p
    }
    h[i] = e; e.pos = i
  }

  private down(i: number): void {
    const h = this.heap, n = h.length
    const e = h[i]!
    for (;;) {
      let c = 2 * i + 1
      if (c >= n) break
      if (c + 1 < n && h[c + 1]!.at < h[c]!.at) c++
      if (h[c]!.at >= e.at) break
      h[i] = h[c]!; h[i]!.pos = i
      i = c
    }
    h[i] = e; e.pos = i
  }
}
