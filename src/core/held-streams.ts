import type { RunEvent } from './domain.ts'
import { endsRun, eventsFrame } from './frames.ts'
import type { Mutex } from './mutex.ts'
import { matchesFeedFilter, type FeedFilter } from './run-change.ts'
import { caughtUpFrame, credentialLapsed, FINISHED, REPLAY_PAGE, UNAVAILABLE, type CredentialCheck } from './stream-session.ts'

/**
 * The stream session for streams held as records, not objects: a Durable Object's hibernated
 * WebSockets keep no session object (a woken object would rebuild one per socket), only a small
 * serializable StreamRecord in their attachment, and this module makes the session's decisions
 * on those records: expiry, heartbeat and revocation (sweepHeld), one frame per position for
 * live events (runFrames, fanOutRun) and the batched replay-then-live of run streams
 * (ReplayBatches), and the feed's replay and pulled pages (replayFeed, deliverFeedPage). The
 * objects give it a HeldOut that only moves bytes. Frames, closes and the
 * client-message answer are stream-session.ts's.
 */

/** Which token a stream was opened (or last refreshed) with: what its revocation check reads. */
export interface TokenRef { tenantId: string; tokenId: string; keyId?: string; mintedAt: number }

/**
 * A stream's state as a small serializable record (a hibernated socket's attachment, 2 KiB at
 * most, survives eviction). Objects add their position (a run's seq, the feed's id) beside it.
 */
export interface StreamRecord {
  /** False until the replay is done: no live event and no heartbeat before. */
  ready: boolean
  /** When the credential stops being valid (moved on by a refresh). */
  expiresAt?: number
  /** Digest of the opening token's tenant and scope: a refresh must match it. */
  scopeKey?: string
  /** The token in force (the opening one, then the last refresh). */
  token?: TokenRef
}

/**
 * A run stream's record: the last seq sent by its replay (written with each replay page, and
 * with `ready`). Live events do not rewrite it: once ready, a stream has been sent every
 * published event after it, so its position is max(last, the holder's published seq).
 */
export interface RunStreamRecord extends StreamRecord {
  last: number
}

/** Where held streams' bytes go (a Durable Object's WebSockets); neither throws. */
export interface HeldOut<S> {
  send(s: S, text: string): void
  close(s: S, code: number, reason: string): void
}

/** A run stream's frame of the events after a position, and whether they end the run (the stream then closes FINISHED). */
export interface RunFrame { frame: string; ends: boolean }

/**
 * The frames of a batch of run events (ascending seqs) for run streams at various positions:
 * each position's events after it as one frame, built once and shared by every stream at that
 * position (the fan-outs of the Durable Objects, whose sockets hold only their position).
 */
export function runFrames(events: RunEvent[]): (pos: number) => RunFrame {
  const frames = new Map<number, RunFrame>()
  return (pos) => {
    let f = frames.get(pos)
    if (!f) {
      const fresh = events[0]!.seq > pos ? events : events.filter((e) => e.seq > pos)
      frames.set(pos, (f = { frame: eventsFrame(fresh), ends: fresh.some(endsRun) }))
    }
    return f
  }
}

/** What one heartbeat/expiry pass does to streams held as records. */
export interface HeldSweep<S> {
  /** Their credential lapsed: close with EXPIRED. */
  expired: S[]
  /** Ready streams that get heartbeatFrame() (when the pass is a heartbeat). */
  beat: S[]
  /** At a heartbeat, the token streams to check: close with REVOKED those whose token is no longer in force. */
  tokens: Array<[S, TokenRef]>
  /** The earliest expiry left among the others (null: none). */
  earliest: number | null
}

/**
 * The session's heartbeat, expiry and revocation decisions for streams held as records (what
 * StreamSession decides for itself, with its timers): one pass at `now`, a heartbeat or not.
 */
export function sweepHeld<S>(held: Iterable<readonly [S, StreamRecord | null]>, now: number, heartbeat: boolean, lapsed: CredentialCheck = credentialLapsed): HeldSweep<S> {
  const out: HeldSweep<S> = { expired: [], beat: [], tokens: [], earliest: null }
  for (const [s, rec] of held) {
    if (!rec) continue // gone
    if (lapsed(rec.expiresAt, now)) { out.expired.push(s); continue }
    if (rec.expiresAt !== undefined) out.earliest = Math.min(out.earliest ?? Infinity, rec.expiresAt)
    if (!heartbeat) continue
    if (rec.ready) out.beat.push(s)
    if (rec.token) out.tokens.push([s, rec.token])
  }
  return out
}

/** Send a run stream its frame (runFrames); one that ends the run is followed by the close 1000. Returns whether it ended. */
export function sendRunFrame<S>(out: HeldOut<S>, s: S, f: RunFrame): boolean {
  out.send(s, f.frame)
  if (f.ends) out.close(s, FINISHED.code, FINISHED.reason)
  return f.ends
}

/**
 * Send published run events (ascending, no gaps) to the ready streams, each from its position:
 * max(rec.last, `sent`), `sent` being the highest seq the holder has sent to every ready stream
 * (by default the seq before the batch: events are published in order without gaps and a stream
 * is made ready only at or past the published seq, so records are not rewritten). A stream below
 * the batch (made ready lower meanwhile) is skipped: the holder's next read serves it. Streams at
 * the same position share one frame.
 */
export function fanOutRun<S>(out: HeldOut<S>, held: Iterable<readonly [S, RunStreamRecord | null]>, events: RunEvent[], sent = events[0]!.seq - 1): void {
  const base = events[0]!.seq - 1
  const top = events[events.length - 1]!.seq
  const frames = runFrames(events)
  for (const [s, rec] of held) {
    if (!rec?.ready) continue
    const pos = Math.max(rec.last, sent)
    if (pos < top && pos >= base) sendRunFrame(out, s, frames(pos))
  }
}

/** A run stream waiting for (or in) its replay: the last seq it was sent. */
export interface Joining<S> {
  s: S
  /** From the stream request (absent for a stream found not ready after a wake). */
  runId?: string
  pos: number
  /** Made ready, or closed (run finished, record gone). */
  done: boolean
  /** The run had finished when the stream was opened: it closes 1000 after its replay. */
  finished?: boolean
}

/** What the holder of run streams provides to their replay. */
export interface ReplayHost<S> extends HeldOut<S> {
  /** The stream's record, or null when it is gone. */
  record(s: S): RunStreamRecord | null
  /** Store the stream's record (where it survives hibernation). */
  save(s: S, rec: RunStreamRecord): void
  /** The holder's lock: live sends and the end of a replay never interleave. */
  lock: Mutex
  /** The run's events after `after` (persisted before published, so it has every published one). */
  read(runId: string, after: number, limit: number): Promise<RunEvent[]>
  /** The run of a batch whose streams carry none (a wake after eviction). */
  runId(): string | undefined
  /** Under the lock: the highest seq already sent to ready streams (the replay reads up to it). */
  sentTop(): number
  /** Under the lock: has the run finished (a stream ready at the end of its history closes 1000)? */
  finished(): boolean
  /** A stream became ready (e.g. note its expiry); its record as it was before. */
  onReady?(rec: RunStreamRecord): void
  /** Under the lock, after a batch went ready (e.g. arm the alarm). */
  afterBatch(): Promise<void>
  log(msg: string, extra: Record<string, unknown>): void
}

/**
 * The replay of joining run sockets, in batches: every socket that joined while the previous
 * batch was served is served by the next one, with one paged libSQL read from the lowest
 * position of the batch (sockets at the same position share each frame), so N sockets joining
 * together cost one read, not N. The read runs outside the object's lock: a socket that is not
 * ready gets no live event, and events sent to ready sockets during the read are read again
 * under the lock (sentTop) before the sockets are made ready, so each socket gets every event
 * after its `after` once, in order.
 */
export class ReplayBatches<S> {
  private joining: Joining<S>[] = []
  private running: Promise<void> | null = null
  /** libSQL reads made by replays since this instance started (tests and operators). */
  reads = 0

  constructor(private readonly host: ReplayHost<S>) {}

  /** Queue sockets' replays (in one batch); resolves when the loop that serves them is done. */
  add(...js: Joining<S>[]): Promise<void> {
    this.joining.push(...js)
    return this.drain()
  }

  /** Streams found not ready (a replay an eviction cut short) get the rest of it from their recorded position. */
  resume(held: Iterable<readonly [S, RunStreamRecord | null]>): Promise<void> {
    for (const [s, rec] of held) if (rec && !rec.ready) this.joining.push({ s, pos: rec.last, done: false })
    return this.drain()
  }

  /** Serve the queued sockets, batch after batch (one loop at a time). */
  drain(): Promise<void> {
    // Nothing queued: a loop would end before it is recorded as running, and stay recorded.
    if (!this.running && !this.joining.length) return Promise.resolve()
    this.running ??= (async () => {
      try {
        while (this.joining.length) {
          const batch = this.joining
          this.joining = []
          await this.replay(batch)
        }
      } finally {
        this.running = null
      }
    })().catch((err) => this.host.log('socket start failed', { error: String(err) }))
    return this.running
  }

  private async replay(batch: Joining<S>[]): Promise<void> {
    const host = this.host
    const runId = batch.find((j) => j.runId !== undefined)?.runId ?? host.runId()
    try {
      if (runId === undefined) throw new Error('no run id for the replay')
      let cursor = batch.reduce((m, j) => Math.min(m, j.pos), Infinity)
      let tail: RunEvent[]
      for (;;) {
        this.reads++
        const page = await host.read(runId, cursor, REPLAY_PAGE)
        if (page.length < REPLAY_PAGE) { tail = page; break }
        this.send(batch, page, false)
        cursor = page[page.length - 1]!.seq
      }
      await host.lock.run(async () => {
        // Sent to the ready sockets while the read ran (these were skipped): read them now, under the lock.
        const sent = host.sentTop()
        let end = tail.length ? tail[tail.length - 1]!.seq : cursor
        while (end < sent) {
          this.reads++
          const more = await host.read(runId, end, REPLAY_PAGE)
          if (!more.length) break
          tail = tail.concat(more)
          end = more[more.length - 1]!.seq
        }
        this.send(batch, tail, true)
        await host.afterBatch()
      })
    } catch (err) {
      host.log('replay failed', { runId, error: String(err) })
      for (const j of batch) if (!j.done) host.close(j.s, UNAVAILABLE.code, UNAVAILABLE.reason)
    }
  }

  /**
   * Send each socket of a batch the events after its position (one frame per distinct
   * position) and record the position with the send, in the same turn. On the last page the
   * socket becomes ready and gets caught_up.
   */
  private send(batch: Joining<S>[], events: RunEvent[], final: boolean): void {
    const host = this.host
    const last = events.length ? events[events.length - 1]!.seq : -Infinity
    const frames = events.length ? runFrames(events) : null
    for (const j of batch) {
      if (j.done) continue
      const moved = j.pos < last
      if (moved) {
        const ended = sendRunFrame(host, j.s, frames!(j.pos))
        j.pos = last
        if (ended) { j.done = true; continue }
      }
      if (!moved && !final) continue
      // The expiry and scope from the attachment: a refresh may have arrived during the replay.
      const rec = host.record(j.s)
      if (!rec) { j.done = true; continue }
      host.save(j.s, { ...rec, last: j.pos, ready: final })
      if (!final) continue
      j.done = true
      host.onReady?.(rec)
      host.send(j.s, caughtUpFrame(j.pos))
      // A finished run whose history is all sent (a resume at its end): nothing more will come.
      if (j.finished || host.finished()) host.close(j.s, FINISHED.code, FINISHED.reason)
    }
  }
}

/**
 * A feed stream's record: every event of the tenant with an id up to `seen` that matches the
 * filter has been sent. It moves past events that do not match, so a narrow filter does not
 * re-read them.
 */
export interface FeedStreamRecord extends StreamRecord {
  filter: FeedFilter
  seen: number
}

/** A ready feed subscriber as a pull sees it, whatever its transport. */
export interface FeedSubscriber {
  filter: FeedFilter
  seen: number
  send(events: RunEvent[]): void
  /** Record the new position (in the attachment for a WebSocket). */
  save(seen: number): void
}

/**
 * One page of the tenant's events (in id order, read after the lowest `seen`) to the feed's
 * subscribers: each gets the events past its `seen` that match its filter, once and in order,
 * and its `seen` moves to the page's end. Those that take all of it get the page itself, so
 * they share one frame.
 */
export function deliverFeedPage(subs: FeedSubscriber[], page: RunEvent[]): void {
  const end = page[page.length - 1]!.id
  for (const s of subs) {
    const fresh = page.filter((e) => e.id > s.seen && matchesFeedFilter(e, s.filter))
    if (fresh.length) s.send(fresh.length === page.length ? page : fresh)
    if (end > s.seen) { s.seen = end; s.save(end) }
  }
}

/**
 * A feed stream's replay: the tenant's last id first (every event up to it is committed), then
 * the filtered history after `after` in pages, then the stream is ready at max(that id, the last
 * event replayed) and gets caught_up. A failed read closes it 1013 (and rejects).
 */
export async function replayFeed<S>(
  host: HeldOut<S> & { record(s: S): FeedStreamRecord | null; save(s: S, rec: FeedStreamRecord): void },
  s: S, after: number, horizon: () => Promise<number>, read: (after: number) => Promise<RunEvent[]>,
): Promise<void> {
  let last = after
  let top: number
  try {
    top = await horizon()
    for (;;) {
      const page = await read(last)
      if (page.length) { host.send(s, eventsFrame(page)); last = page[page.length - 1]!.id }
      if (page.length < REPLAY_PAGE) break
    }
  } catch (err) {
    host.close(s, UNAVAILABLE.code, UNAVAILABLE.reason)
    throw err
  }
  // Re-read: a refresh may have moved the expiry and token during the replay.
  const rec = host.record(s)
  if (!rec) return // gone
  host.save(s, { ...rec, seen: Math.max(top, last), ready: true })
  host.send(s, caughtUpFrame(last))
}
