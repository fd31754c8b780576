import type { RunEvent } from './domain.ts'

/**
 * Replay-then-live for one subscriber, with no gap and no duplicate. The subscriber is
 * registered for live events *before* history is read; live events that arrive meanwhile
 * are buffered, and everything is delivered in position order, each position once.
 * Position is the seq for a run stream and the event id for the feed.
 */
export class ReplayGate {
  private buffer: RunEvent[] | null = []
  private last: number

  constructor(
    after: number,
    private readonly position: (e: RunEvent) => number,
    deliver?: (events: RunEvent[]) => void,
  ) {
    this.last = after
    if (deliver) this.deliver = deliver
  }

  /** Where fresh events go, in position order: the constructor's `deliver`, or a subclass's own. */
  protected deliver(_events: RunEvent[]): void {}

  get lastPosition(): number { return this.last }
  get replaying(): boolean { return this.buffer !== null }

  /** A live event (already persisted). */
  push(events: RunEvent[]): void {
    if (this.buffer) { this.buffer.push(...events); return }
    this.emit(events)
  }

  /** Read history in pages after the current position, then switch to live. */
  async replay(load: (after: number) => Promise<RunEvent[]>, pageSize: number): Promise<void> {
    for (;;) {
      const page = await load(this.last)
      this.emit(page)
      if (page.length < pageSize) break
    }
    const buffered = this.buffer ?? []
    this.buffer = null
    this.emit(buffered.sort((a, b) => this.position(a) - this.position(b)))
  }

  private emit(events: RunEvent[]): void {
    if (events.length === 0) return
    // Live events arrive in position order: when the first is new, all are (no copy).
    const fresh = this.position(events[0]!) > this.last && isAscending(events, this.position)
      ? events
      : events.filter((e) => this.position(e) > this.last)
    if (fresh.length === 0) return
    this.last = this.position(fresh[fresh.length - 1]!)
    this.deliver(fresh)
  }
}

function isAscending(events: RunEvent[], position: (e: RunEvent) => number): boolean {
  for (let i = 1; i < events.length; i++) if (position(events[i]!) <= position(events[i - 1]!)) return false
  return true
}
