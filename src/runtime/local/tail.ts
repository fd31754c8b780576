import type { RunEvent } from '../../core/domain.ts'
import type { Publisher } from '../../core/ports.ts'
import type { Store } from '../../db/store.ts'
import type { LocalHub } from './hub.ts'

/** Most events read from the table at once (the tail reads again at once while pages come back full). */
const TAIL_BATCH = 500

/** Where a process tells the others that events up to an id are committed (the bus), if anywhere. */
export interface Announcer { announce(maxEventId: number): void }

export interface EventTailOptions {
  /** Period of the safety-net read of the events table; 0 reads only when woken (a local commit, a bus notice). */
  intervalMs: number
  log: (msg: string, extra?: Record<string, unknown>) => void
  batch?: number
  /**
   * The database's change counter as one connection sees it (write-connection.ts
   * `dataVersionOf`): a period in which it stood still skips its probe, since nobody else
   * committed anything. Without it, every period probes.
   */
  dataVersion?: () => number
  /**
   * Called on every period with the counter just read: another timer that looks for other
   * processes' commits (the read-cache sync) rides on this one, so an idle process pays one
   * wake-up and one probe a period for both (issue 26).
   */
  onPeriod?: (version: number | undefined) => void
  /**
   * Watch the database file for commits (write-connection.ts `fileWatchOf`: the WAL, which every
   * commit appends to and nothing else touches): calls `onChange` on a change, answers the watch's
   * disarm, and throws when the file cannot be watched. With it and `dataVersion`, a tail whose
   * counter stood still for QUIET_MS sleeps: its period slows to SLEEP_PERIOD_MS and the file's
   * next change wakes it at once (issue 26: an idle process spent ~0.25% of a core on ten
   * probes a second that found nothing).
   */
  watchFile?: (onChange: () => void) => () => void
  /** The period while asleep (default SLEEP_PERIOD_MS). */
  sleepPeriodMs?: number
}

/** A tail whose change counter stood still this long sleeps (see EventTailOptions.watchFile). */
const QUIET_MS = 1_000
/**
 * The period of a sleeping tail: a safety net for a change the watch did not report (a file
 * system without change notices); a change it reports is read at once.
 */
const SLEEP_PERIOD_MS = 1_000

/**
 * Live delivery for every process sharing a database (Node and Deno). Every event reaches this
 * process's hub in event-id order, each once, whichever process committed it.
 *
 * Why id order is commit order: the id is assigned inside the write transaction and SQLite
 * (and libSQL servers) run one writer at a time, so a reader never sees id n+1 committed while
 * id n is still to come. The tail keeps a cursor (every event up to it has been published
 * here) and reads `id > cursor` from the store.
 *
 * A local commit whose first id follows the cursor is published at once, without a read: with
 * one process that is every commit, so one process costs what it did before the tail. A local
 * commit after a gap (another process committed in between) wakes a read instead, so the
 * feed never shows a later id before an earlier one. Other processes' commits are found by a
 * bus notice (`notified`) or, when none comes (no bus, a bus down, a lost notice), by the
 * periodic read: a notice only makes an event sooner, never makes it exist.
 */
export class EventTail implements Publisher {
  private cursor = 0
  private reading = false
  private readAgain = false
  private timer: ReturnType<typeof setInterval> | undefined
  private failing = false
  private stopped = false
  private announcer: Announcer | undefined
  private announceMax = 0
  private announceQueued = false
  private readonly batch: number
  private readonly sleepPeriodMs: number
  /** Events published straight from this process's commits, and from reads of the table; reads, periodic probes that found nothing to read, and periods skipped because the file's change counter stood still (tests and the bench look). */
  readonly stats = { direct: 0, fromTable: 0, reads: 0, probes: 0, skipped: 0, sleeps: 0 }
  /** The change counter at the last periodic probe (undefined: probe on the next period). */
  private probedVersion: number | undefined
  /** Periods in a row that found the change counter where it was. */
  private quietPeriods = 0
  /** While asleep: the file watch's disarm. */
  private disarmWatch: (() => void) | undefined
  /** How the tail watches the file while asleep; dropped when the file cannot be watched (it never sleeps then). */
  private watchFile: EventTailOptions['watchFile']

  constructor(private readonly store: Store, private readonly hub: LocalHub, private readonly opts: EventTailOptions) {
    this.batch = opts.batch ?? TAIL_BATCH
    this.sleepPeriodMs = opts.sleepPeriodMs ?? SLEEP_PERIOD_MS
    // A sleeping tail needs both: the counter tells it when to sleep, the watch wakes it.
    this.watchFile = opts.dataVersion && opts.intervalMs > 0 && opts.intervalMs < this.sleepPeriodMs ? opts.watchFile : undefined
  }

  /** Start at the table's end (subscribers replay history themselves) and arm the periodic read. */
  async start(): Promise<void> {
    this.cursor = await this.store.runs.maxEventId()
    this.every(this.opts.intervalMs)
  }

  /** Run the periodic read every `ms` (none for 0). */
  private every(ms: number): void {
    clearInterval(this.timer)
    this.timer = undefined
    if (ms <= 0 || this.stopped) return
    this.timer = setInterval(() => this.poll(), ms)
    ;(this.timer as { unref?: () => void }).unref?.()
  }

  /** Whether the tail is asleep (its period slowed, woken by the file's next change). */
  get asleep(): boolean { return this.disarmWatch !== undefined }

  /** Slow the period and wake on the file's next change instead (see EventTailOptions.watchFile). */
  private sleep(watchFile: NonNullable<EventTailOptions['watchFile']>): void {
    try {
      this.disarmWatch = watchFile(() => this.wakeFromSleep(true))
    } catch (err) {
      this.watchFile = undefined
      this.opts.log('event tail: cannot watch the database file; it keeps reading every period', { error: String((err as Error)?.message ?? err) })
      return
    }
    this.stats.sleeps++
    this.every(this.sleepPeriodMs)
  }

  /** Back to the normal period (a change of the file, a notice, a commit of this process after a gap); `probe`: probe at once. */
  private wakeFromSleep(probe: boolean): void {
    if (!this.disarmWatch) return
    this.disarmWatch()
    this.disarmWatch = undefined
    this.quietPeriods = 0
    this.every(this.opts.intervalMs)
    if (probe) this.poll()
  }

  /** Tell other processes about this process's commits through `announcer` (the bus). */
  announceTo(announcer: Announcer | undefined): void { this.announcer = announcer }

  /** Every event up to this id has been published here. */
  get position(): number { return this.cursor }

  /** A commit of this process (one run's events, ascending ids), durable already. */
  publish(tenantId: string, events: RunEvent[]): void {
    if (events.length === 0) return
    const last = events[events.length - 1]!.id
    this.queueAnnounce(last)
    if (last <= this.cursor) return // a read that raced the commit has published it
    const fresh = events[0]!.id > this.cursor ? events : events.filter((e) => e.id > this.cursor)
    if (fresh[0]!.id !== this.cursor + 1) return this.wake() // another process committed in between: read in id order
    this.cursor = last
    this.stats.direct += fresh.length
    this.hub.publish(tenantId, fresh)
  }

  /** Another process says events up to `maxEventId` are committed. */
  notified(maxEventId: number): void {
    if (maxEventId > this.cursor) this.wake()
  }

  /** Read the table now (coalesced with a read in flight). */
  wake(): void {
    if (this.stopped) return
    this.wakeFromSleep(false)
    if (this.reading) { this.readAgain = true; return }
    void this.drain(false)
  }

  /**
   * The periodic safety net: probe the table's highest id first, and read only when it is past
   * the cursor. Most periods find nothing new (with one process, always: its commits are
   * published directly), and the probe costs a fraction of the read (no join, no rows).
   */
  private poll(): void {
    if (this.stopped) return
    // Idle cost: with no other writer on the file, a period costs one native call, not a query.
    const v = this.opts.dataVersion?.()
    this.opts.onPeriod?.(v)
    if (this.reading) { this.readAgain = true; return }
    if (v !== undefined) {
      if (v === this.probedVersion) {
        this.stats.skipped++
        if (this.watchFile && !this.disarmWatch && ++this.quietPeriods * this.opts.intervalMs >= QUIET_MS) this.sleep(this.watchFile)
        return
      }
      this.probedVersion = v
      // The safety net found a change the watch did not report.
      this.wakeFromSleep(false)
    }
    this.quietPeriods = 0
    void this.drain(true)
  }

  stop(): void {
    this.stopped = true
    clearInterval(this.timer)
    this.disarmWatch?.()
    this.disarmWatch = undefined
  }

  private async drain(probeFirst: boolean): Promise<void> {
    this.reading = true
    try {
      if (probeFirst) {
        const max = await this.store.runs.maxEventId()
        // A wake during the probe (a notice, a local commit after a gap) reads anyway.
        if (max <= this.cursor && !this.readAgain) { this.stats.probes++; this.recovered(); return }
      }
      for (;;) {
        this.readAgain = false
        const rows = await this.store.runs.eventsAfter(this.cursor, this.batch)
        this.stats.reads++
        this.recovered()
        this.deliver(rows)
        if (rows.length < this.batch && !this.readAgain) break
        if (this.stopped) break
      }
    } catch (err) {
      this.probedVersion = undefined // the next period reads again, whatever the counter says
      if (!this.failing) {
        this.failing = true
        this.opts.log('event tail: reading the events table failed; live delivery of other processes\' events waits, retrying on the next notice or period', {
          error: String((err as Error)?.message ?? err), intervalMs: this.opts.intervalMs,
        })
      }
    } finally {
      this.reading = false
    }
  }

  private recovered(): void {
    if (this.failing) { this.failing = false; this.opts.log('event tail: reading the events table again', { position: this.cursor }) }
  }

  /** Publish rows read from the table: those past the cursor, one run's consecutive events per hub call. */
  private deliver(rows: Array<{ tenantId: string; event: RunEvent }>): void {
    let start = 0
    while (start < rows.length && rows[start]!.event.id <= this.cursor) start++
    if (start === rows.length) return
    // The store caches run rows and history pages; those of runs written elsewhere are stale now.
    const runIds = new Set<string>()
    for (let i = start; i < rows.length; i++) runIds.add(rows[i]!.event.run_id)
    this.store.runs.forget(runIds)
    while (start < rows.length) {
      const { tenantId, event } = rows[start]!
      let end = start + 1
      while (end < rows.length && rows[end]!.event.run_id === event.run_id) end++
      const events = rows.slice(start, end).map((r) => r.event)
      this.cursor = events[events.length - 1]!.id
      this.stats.fromTable += events.length
      try {
        this.hub.publish(tenantId, events)
      } catch {
        // Durable already: a subscriber that failed catches up from the store on reconnect.
      }
      start = end
    }
  }

  /** One announcement per burst of commits (a group commit publishes each of its runs in turn). */
  private queueAnnounce(id: number): void {
    if (!this.announcer) return
    if (id > this.announceMax) this.announceMax = id
    if (this.announceQueued) return
    this.announceQueued = true
    queueMicrotask(() => {
      this.announceQueued = false
      this.announcer?.announce(this.announceMax)
    })
  }
}
