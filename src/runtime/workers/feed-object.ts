import { DurableObject } from 'cloudflare:workers'
import { eventsFrame } from '../../core/frames.ts'
import { deliverFeedPage, replayFeed, type FeedStreamRecord, type FeedSubscriber } from '../../core/held-streams.ts'
import { Mutex } from '../../core/mutex.ts'
import { REPLAY_PAGE, type StreamSession } from '../../core/stream-session.ts'
import type { FeedFilter } from '../../core/run-change.ts'
import { errorJson, upgradeRequired } from '../../http/errors.ts'
import type { Env } from './env.ts'
import { getShared, type Shared } from './shared.ts'
import { heldFrom, logAt, SocketHoldingObject } from './socket-holder.ts'
import { streamParams, WS_OUT, type StreamParams } from './streams.ts'

/** Per-socket state in the attachment (survives hibernation): the core's FeedStreamRecord. */
type FeedSocket = FeedStreamRecord

/** What the pulls keep of an SSE session (the session itself knows its last event sent). */
interface FeedSse { filter: FeedFilter; seen: number }

/**
 * A tenant's feed: one object per tenant, holding the feed's subscribers (hibernatable
 * WebSockets; SSE keeps it awake).
 *
 * Ordering: run objects publish independently, so notifications reach this object in any
 * order. It therefore never forwards what it is told; a notification only says "events up to
 * id N exist", and the object reads the tenant's events after the lowest subscriber position
 * from libSQL, in id order. libSQL has one writer and assigns ids in commit order, so a read
 * that sees id N also sees every smaller id: each subscriber gets the events in id order,
 * without gaps, each once, and `after=<last id received>` resumes exactly. Notifications that
 * arrive while a read runs are coalesced into one more read, whose result goes out as one
 * `batch` frame.
 */
export class FeedObject extends SocketHoldingObject<FeedSocket> {
  private readonly lock = new Mutex()
  /** The SSE sessions' filters and `seen` (as FeedSocket's). */
  private readonly sseFeed = new WeakMap<StreamSession, FeedSse>()
  private tenantId?: string
  private pulling: Promise<void> | null = null
  private again = false

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env, 'FeedObject')
  }

  /** Events up to `maxId` are in libSQL: read and deliver them (cheap when nobody listens). */
  async notify(tenantId: string, maxId: number): Promise<void> {
    await this.entry('notify', async () => {
      const subs = this.subscribers()
      if (!subs.length || subs.every((s) => s.seen >= maxId)) return
      await this.pull(tenantId)
    })
  }

  async fetch(request: Request): Promise<Response> {
    return this.serveStream(async () => {
      const params = streamParams(request)
      if (!params || params.runId) return errorJson(400, 'bad_request', 'not a feed request')
      await this.rememberTenant(params.tenantId)
      if (params.transport === 'sse') return await this.openSse(params)
      if (request.headers.get('upgrade')?.toLowerCase() !== 'websocket') return upgradeRequired()
      return this.acceptStream(request, params, 'feed', { ...heldFrom(params), filter: (params.filter ?? {}) as FeedFilter, seen: params.after },
        (ws) => this.startSocket(ws, params))
    })
  }

  /** The alarm's safety net for lost notifications (after the sweep): one read per heartbeat while someone listens. */
  protected override async catchUp(): Promise<void> {
    const tenantId = await this.tenant()
    if (tenantId && this.subscribers().length) await this.pull(tenantId)
  }

  // ---- internals ------------------------------------------------------------------------------



  private async deps(): Promise<Shared> {
    return (this.shared ??= await getShared(this.env))
  }

  private async rememberTenant(tenantId: string): Promise<void> {
    if (this.tenantId === tenantId) return
    this.tenantId = tenantId
    if ((await this.ctx.storage.get<string>('tenant')) !== tenantId) await this.ctx.storage.put('tenant', tenantId)
  }

  private async tenant(): Promise<string | undefined> {
    return (this.tenantId ??= await this.ctx.storage.get<string>('tenant'))
  }

  private subscribers(): FeedSubscriber[] {
    const subs: FeedSubscriber[] = []
    for (const ws of this.ctx.getWebSockets('feed')) {
      const att = this.atts.get(ws)
      if (!att?.ready) continue
      subs.push({
        filter: att.filter, seen: att.seen,
        send: (events) => WS_OUT.send(ws, eventsFrame(events)),
        // Re-read: a token refresh may have moved the expiry since this list was made (a pull awaits libSQL).
        save: (seen) => this.atts.set(ws, { ...(this.atts.get(ws) ?? att), seen }),
      })
    }
    for (const s of this.sse) {
      const f = this.sseFeed.get(s)
      if (!f || s.replaying || s.closing) continue
      // The session's gate drops what it has sent already, and ends a slow consumer.
      subs.push({ filter: f.filter, seen: f.seen, send: (events) => s.push(events), save: (seen) => { f.seen = seen } })
    }
    return subs
  }

  /** One read at a time; notifications during a read ask for one more. */
  private pull(tenantId: string): Promise<void> {
    if (this.pulling) { this.again = true; return this.pulling }
    this.pulling = (async () => {
      try {
        do {
          this.again = false
          await this.lock.run(() => this.pullOnce(tenantId))
        } while (this.again)
      } finally {
        this.pulling = null
      }
    })()
    return this.pulling
  }

  private async pullOnce(tenantId: string): Promise<void> {
    const subs = this.subscribers()
    if (!subs.length) return
    const { store } = await this.deps()
    let from = Math.min(...subs.map((s) => s.seen))
    for (;;) {
      const page = await store.runs.feedEvents(tenantId, from, {}, REPLAY_PAGE)
      if (!page.length) break
      deliverFeedPage(subs, page)
      from = page[page.length - 1]!.id
      if (page.length < REPLAY_PAGE) break
    }
  }

  /** A socket's replay (core replayFeed), under the lock: pulls wait for it. */
  private startSocket(ws: WebSocket, params: StreamParams): Promise<void> {
    return this.lock.run(async () => {
      const { store } = await this.deps()
      const filter = (params.filter ?? {}) as FeedFilter
      await replayFeed(this.held, ws, params.after, () => store.runs.lastEventId(params.tenantId),
        (after) => store.runs.feedEvents(params.tenantId, after, filter, REPLAY_PAGE))
      await this.armAlarm()
    }).catch((err) => this.log('replay failed', 'fetch', { error: String(err) }))
  }

  /**
   * An SSE subscriber: a core StreamSession (socket-holder.ts) that replays the filtered history,
   * then takes the pulls' events. As for a socket, the tenant's last id is read first, so once
   * the replay is done everything up to it has been seen.
   */
  private async openSse(params: StreamParams): Promise<Response> {
    const { store } = await this.deps()
    const filter = (params.filter ?? {}) as FeedFilter
    const horizon = await store.runs.lastEventId(params.tenantId)
    const { session, response } = await this.sseSession({ after: params.after, expiresAt: params.expiresAt }, params.token,
      (after) => store.runs.feedEvents(params.tenantId, after, filter, REPLAY_PAGE))
    const feed: FeedSse = { filter, seen: horizon }
    this.sseFeed.set(session, feed)
    this.ctx.waitUntil(session.start().then(async () => {
      feed.seen = Math.max(feed.seen, session.lastPosition)
      await this.armAlarm()
      // What was committed during the replay (its notifications found no ready subscriber).
      await this.pull(params.tenantId)
    }).catch((err) => this.log('replay failed', 'fetch', { error: String(err) })))
    return response
  }

}

/**
 * A relay shard in front of a tenant's feed object (when RUNRELAY_FEED_SHARDS > 0): run
 * objects notify shard hash(run) % N, and each shard forwards at most one notification at a
 * time, carrying the highest id it has heard of. Notifications carry no events (the feed
 * reads libSQL), so coalescing loses nothing, and the feed object receives at most N
 * concurrent requests however many runs publish.
 */
export class FeedRelayObject extends DurableObject<Env> {
  private pending = 0
  private forwarded = 0
  private inflight: Promise<void> | null = null

  async notify(tenantId: string, maxId: number): Promise<void> {
    try {
      this.pending = Math.max(this.pending, maxId)
      this.inflight ??= (async () => {
        try {
          while (this.forwarded < this.pending) {
            const target = this.pending
            await this.env.FEEDS.get(this.env.FEEDS.idFromName(tenantId)).notify(tenantId, target)
            this.forwarded = target
          }
        } finally {
          this.inflight = null
        }
      })()
      await this.inflight
    } catch (err) {
      logAt(undefined, 'handler failed', 'FeedRelayObject.notify', { tenantId, error: String((err as Error)?.stack ?? err) })
      throw err
    }
  }
}
