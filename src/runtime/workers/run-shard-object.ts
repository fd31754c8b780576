import type { RunEvent } from '../../core/domain.ts'
import { endsRun } from '../../core/frames.ts'
import { Mutex } from '../../core/mutex.ts'
import { REPLAY_PAGE } from '../../core/stream-session.ts'
import { errorJson } from '../../http/errors.ts'
import type { Env } from './env.ts'
import { heldFrom, MetaTable, SocketHoldingObject } from './socket-holder.ts'
import { fanOutRun, ReplayBatches, type RunStreamRecord } from '../../core/held-streams.ts'
import { getShared, type Shared } from './shared.ts'
import { streamParams, WS_OUT } from './streams.ts'

/** Per-socket state in the attachment (survives hibernation); once ready a socket's position is max(last, the shard's top). */
type ShardSocket = RunStreamRecord

/** What a shard reports about itself (tests and operators); replayReads counts since the instance started. */
export interface ShardStats { sockets: number; ready: number; top: number; finished: boolean; replayReads: number }

/**
 * A socket holder in front of a hot run (RUNRELAY_RUN_SHARDS > 0): one object per
 * (run, shard), named `<runId>:<k>`. The run object hands it WebSocket subscribers and
 * forwards every batch of published events to it (`deliver`); it holds the sockets
 * hibernated and sends each its frame. One concern: hold sockets, gate their replay, pull gaps.
 * Joining sockets replay in batches (ReplayBatches, as in the run object), so a burst of joins
 * costs one libSQL read per batch, not one per socket.
 *
 * Order and no loss: the shard records `top`, the highest seq it has sent to every ready
 * socket (durable, written in the same turn as the sends). A delivery that does not start
 * right after a ready socket's position (a lost or reordered RPC, a wake after eviction) is
 * completed from libSQL first: events are persisted before they are published, so the read
 * has them. A delivery wholly at or below a socket's position is skipped, so none is sent
 * twice. A missed terminal event is found by the heartbeat's read (one libSQL query per
 * heartbeat while ready sockets exist).
 */
export class RunShardObject extends SocketHoldingObject<ShardSocket> {
  private readonly lock = new Mutex()
  /** Small durable values (JSON by key) in the object's SQLite storage. */
  private readonly meta = new MetaTable(this.ctx.storage.sql)
  /** Joining sockets' replays, in batches: one libSQL read per batch, not one per socket. */
  private readonly replays = new ReplayBatches<WebSocket>({
    ...this.held,
    lock: this.lock,
    read: async (runId, after, limit) => (await this.deps()).store.runs.events(runId, after, limit),
    runId: () => this.meta.get<string>('runId'),
    sentTop: () => this.top(),
    finished: () => this.meta.get<boolean>('finished') === true,
    afterBatch: () => this.armAlarm(),
    log: (msg, extra) => this.log(msg, 'fetch', extra),
  })

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env, 'RunShardObject')
    // A replay cut short by an eviction starts again from the socket's recorded position.
    ctx.waitUntil(this.replays.resume(this.heldStreams()))
  }

  /** Events the run object published (in seq order, no gaps within the batch). */
  deliver(runId: string, events: RunEvent[]): Promise<void> {
    return this.entry('deliver', () => this.lock.run(() => this.sendLive(runId, events)))
  }

  /** How many sockets this shard holds, and its position. */
  stats(): ShardStats {
    const sockets = this.ctx.getWebSockets()
    return { sockets: sockets.length, ready: sockets.filter((ws) => this.atts.get(ws)?.ready).length, top: this.top(), finished: this.meta.get<boolean>('finished') === true, replayReads: this.replays.reads }
  }

  async fetch(request: Request): Promise<Response> {
    return this.serveStream(async () => {
      const params = streamParams(request)
      if (!params?.runId || params.transport !== 'ws') return errorJson(400, 'bad_request', 'not a run WebSocket request')
      await this.deps()
      this.meta.set('runId', params.runId)
      // Routed here by the Worker: the run object learns of this shard once, before its first socket.
      if (params.shard !== undefined && !this.meta.get<boolean>('registered')) {
        await this.env.RUNS.get(this.env.RUNS.idFromName(params.runId)).addShard(params.runId, params.shard)
        this.meta.set('registered', true)
      }
      return this.acceptStream(request, params, undefined, { ...heldFrom(params), last: params.after },
        (ws) => this.replays.add({ s: ws, runId: params.runId, pos: params.after, done: false, finished: params.finished }))
    })
  }

  /** The alarm's safety net for a lost delivery (above all a lost terminal event): read what follows top. */
  protected override async catchUp(): Promise<void> {
    const runId = this.meta.get<string>('runId')
    if (runId && !this.meta.get<boolean>('finished')) await this.lock.run(() => this.sendLive(runId, []))
  }

  // ---- internals ------------------------------------------------------------------------------

  /**
   * Send live events to the ready sockets, completing a gap from libSQL first. With no events
   * (the heartbeat), read whatever follows the lowest ready position.
   */
  private async sendLive(runId: string, events: RunEvent[]): Promise<void> {
    const top = this.top()
    const ready = this.ctx.getWebSockets().filter((ws) => this.atts.get(ws)?.ready)
    const end = events.length ? events[events.length - 1]!.seq : Infinity
    const low = ready.reduce((m, ws) => Math.min(m, Math.max(this.atts.get(ws)!.last, top)), Infinity)
    if (low >= end) { if (end > top) this.meta.set('top', end); return } // nobody behind: nothing to send
    let batch = events
    const first = events.length ? events[0]!.seq : Infinity
    if (low === Infinity) {
      if (events.length) this.meta.set('top', Math.max(top, end))
      return
    }
    if (low < first - 1) {
      // A gap (or the heartbeat's read): libSQL has every published event.
      const { store } = await this.deps()
      const read: RunEvent[] = []
      let cursor = low
      for (;;) {
        const page = await store.runs.events(runId, cursor, REPLAY_PAGE)
        const keep = page.filter((e) => e.seq < first)
        read.push(...keep)
        if (page.length < REPLAY_PAGE || keep.length < page.length) break
        cursor = page[page.length - 1]!.seq
      }
      batch = read.concat(events)
    }
    if (!batch.length) return
    const newTop = batch[batch.length - 1]!.seq
    // Re-read positions after the await: a socket may have become ready, or top moved (another deliver).
    const nowTop = this.top()
    if (newTop <= nowTop) return
    // A socket made ready lower meanwhile is skipped: the next heartbeat read serves it.
    fanOutRun(WS_OUT, this.heldStreams(), batch, nowTop)
    const finished = batch.some(endsRun)
    this.ctx.storage.transactionSync(() => {
      this.meta.set('top', newTop)
      if (finished) this.meta.set('finished', true)
    })
  }

  private top(): number {
    return this.meta.get<number>('top') ?? 0
  }

  private async deps(): Promise<Shared> {
    return (this.shared ??= await getShared(this.env))
  }


}
