import type { RunEvent } from '../../core/domain.ts'
import type { Mutex } from '../../core/mutex.ts'
import { caughtUpFrame, FINISHED, REPLAY_PAGE, runFrames, UNAVAILABLE } from '../../core/stream-session.ts'
import type { HeldSocket } from './socket-holder.ts'
import { sendRunFrame, tryClose, trySend, type SocketAttachments } from './streams.ts'

/**
 * A run socket's attachment (RunObject and RunShardObject; it survives hibernation): the
 * held-socket fields and the last seq sent by the replay (written with each replay page, and
 * with `ready`). Live events do not rewrite it: once ready, a socket has been sent every
 * published event after it, so its position is max(last, the object's published seq).
 */
export interface ReplaySocket extends HeldSocket {
  last: number
}

/** A socket waiting for (or in) its replay: the last seq it was sent. */
export interface Joining {
  ws: WebSocket
  /** From the stream request (absent for a socket found not ready after a wake). */
  runId?: string
  pos: number
  /** Made ready, or closed (run finished, attachment gone). */
  done: boolean
  /** The run had finished when the stream was opened: the socket closes 1000 after its replay. */
  finished?: boolean
}

/** What the object holding the sockets provides to their replay. */
export interface ReplayHost<T extends ReplaySocket> {
  atts: SocketAttachments<T>
  /** The object's lock: live sends and the end of a replay never interleave. */
  lock: Mutex
  /** The run's events after `after` from libSQL (persisted before published, so it has every published one). */
  read(runId: string, after: number, limit: number): Promise<RunEvent[]>
  /** The run of a batch whose sockets carry none (a wake after eviction). */
  runId(): string | undefined
  /** Under the lock: the highest seq already sent to ready sockets (the replay reads up to it). */
  sentTop(): number
  /** Under the lock: has the run finished (a socket ready at the end of its history closes 1000)? */
  finished(): boolean
  /** A socket became ready (e.g. note its expiry). */
  onReady?(j: Joining, att: T): void
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
export class ReplayBatches<T extends ReplaySocket> {
  private joining: Joining[] = []
  private running: Promise<void> | null = null
  /** libSQL reads made by replays since this instance started (tests and operators). */
  reads = 0

  constructor(private readonly host: ReplayHost<T>) {}

  /** Queue sockets' replays (in one batch); resolves when the loop that serves them is done. */
  add(...js: Joining[]): Promise<void> {
    this.joining.push(...js)
    return this.drain()
  }

  /** Serve the queued sockets, batch after batch (one loop at a time). */
  drain(): Promise<void> {
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

  private async replay(batch: Joining[]): Promise<void> {
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
      for (const j of batch) if (!j.done) tryClose(j.ws, UNAVAILABLE.code, UNAVAILABLE.reason)
    }
  }

  /**
   * Send each socket of a batch the events after its position (one frame per distinct
   * position) and record the position with the send, in the same turn. On the last page the
   * socket becomes ready and gets caught_up.
   */
  private send(batch: Joining[], events: RunEvent[], final: boolean): void {
    const last = events.length ? events[events.length - 1]!.seq : -Infinity
    const frames = events.length ? runFrames(events) : null
    for (const j of batch) {
      if (j.done) continue
      const moved = j.pos < last
      if (moved) {
        const ended = sendRunFrame(j.ws, frames!(j.pos))
        j.pos = last
        if (ended) { j.done = true; continue }
      }
      if (!moved && !final) continue
      // The expiry and scope from the attachment: a refresh may have arrived during the replay.
      const att = this.host.atts.get(j.ws)
      if (!att) { j.done = true; continue }
      this.host.atts.set(j.ws, { ...att, last: j.pos, ready: final })
      if (!final) continue
      j.done = true
      this.host.onReady?.(j, att)
      trySend(j.ws, caughtUpFrame(j.pos))
      // A finished run whose history is all sent (a resume at its end): nothing more will come.
      if (j.finished || this.host.finished()) tryClose(j.ws, FINISHED.code, FINISHED.reason)
    }
  }
}
