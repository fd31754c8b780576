import type { Context } from 'hono'
import { streamSSE } from 'hono/streaming'
import type { UpgradeWebSocket, WSContext } from 'hono/ws'
import type { RunEvent } from '../../core/domain.ts'
import { noMetrics, type Metrics } from '../../core/ports.ts'
import { endsRun, eventsFrame, sseFrame, sseHeartbeatFrame, sseRetryFrame, sseSlowConsumer } from '../../core/frames.ts'
import { CLOSE, clientFrameTooBig, parseClientMessage, PROTOCOL_VERSION, type ServerMessage } from '../../core/protocol.ts'
import { ReplayGate } from '../../core/replay.ts'
import type { Store } from '../../db/store.ts'
import type { StreamRequest, Streams } from '../../http/hosts.ts'
import type { LocalHub } from './hub.ts'

export interface LocalStreamOptions {
  heartbeatMs: number
  /** Bytes a WebSocket or SSE subscriber may have unread before it counts as a slow consumer. */
  maxBufferedBytes: number
  metrics?: Metrics
}

const REPLAY_PAGE = 500
/** How long a slow consumer has to read up to its close frame before the socket is dropped. */
const SLOW_CONSUMER_GRACE_MS = 5_000

/** Why a slow SSE consumer's stream fails: a premature close (what @hono/node-server treats as a client gone). */
const slowConsumerAbort = () => Object.assign(new Error('slow consumer dropped'), { code: 'ERR_STREAM_PREMATURE_CLOSE' })

interface Session {
  gate: ReplayGate
  unsubscribe: () => void
}

/** What a stream writes to: `ws`'s WebSocket on Node, an adapter over Hono's WSContext elsewhere. */
export interface StreamSocket {
  send(data: string): void
  close(code?: number, reason?: string): void
  readonly bufferedAmount: number
  terminate?(): void
}

/** What the runtime tells a stream about its socket. */
export interface SocketHandler {
  message(data: unknown): void
  /** The socket closed or failed (called once or more). */
  closed(): void
}

/**
 * A runtime that upgrades stream requests itself (Node): the app authenticates and validates
 * the request as usual, then `accept` marks it for upgrade; once the app has answered, the
 * runtime upgrades the connection and hands the socket to `open`. Nothing of the request is
 * kept past that point: a socket costs its session object.
 */
export interface WebSocketAcceptor {
  /** Undefined when the request is not a WebSocket upgrade. */
  accept(c: Context, open: (socket: StreamSocket) => SocketHandler): Response | undefined
  /** The runtime's native publish/subscribe (Bun), where caught-up WebSocket subscribers move. */
  readonly topics?: NativeTopics
}

/** A caught-up subscriber on a native topic: its socket, and how to close its stream. */
export interface TopicMember {
  readonly socket: StreamSocket
  end(code: number, reason: string): void
}

/**
 * Native fan-out for run rooms and feed groups (Bun's topics): a WebSocket subscriber whose
 * replay gate has caught up leaves the hub's JS fan-out and joins the topic of its run (or of
 * its tenant and feed filter), which publishes each frame once for all members. Publishing is
 * synchronous, so the move loses and repeats nothing.
 */
export interface NativeTopics {
  join(hub: LocalHub, req: StreamRequest, member: TopicMember): void
  /** Idempotent. */
  leave(req: StreamRequest, member: TopicMember): void
}

const bySeq = (e: RunEvent) => e.seq
const byId = (e: RunEvent) => e.id

/**
 * One WebSocket subscriber: its own replay gate (the hub pushes to the session itself, so a
 * socket costs one object here, not a gate and a closure besides), its subscription and (token
 * streams) expiry timer.
 */
class WsSession extends ReplayGate implements SocketHandler, TopicMember {
  closing = false
  private done = false
  /** On its run's native topic (no longer in the hub's room). */
  private onTopic = false
  /** Feed streams; a run stream leaves its room by run id (no closure kept per socket). */
  private unsubscribe: (() => void) | undefined
  private expiry: ReturnType<typeof setTimeout> | undefined

  constructor(private readonly streams: LocalStreams, readonly socket: StreamSocket, private readonly req: StreamRequest) {
    const isRun = req.runId !== undefined
    super(req.after, isRun ? bySeq : byId)
    if (isRun) streams.hub.joinRun(req.runId!, this)
    else this.unsubscribe = streams.hub.subscribeFeed(req.tenantId, req.filter ?? {}, this)
    streams.metrics.add('runrelay_subscribers', { transport: 'ws', stream: isRun ? 'run' : 'feed' }, 1)
  }

  start(heartbeatMs: number): void {
    const req = this.req
    this.send({ type: 'hello', protocol: PROTOCOL_VERSION, stream: req.runId ? 'run' : 'feed', run_id: req.runId, after: req.after, heartbeatMs })
    this.armExpiry(req.expiresAt)
    this.replay(this.streams.load(req), REPLAY_PAGE).then(
      () => {
        if (this.closing) return
        this.send({ type: 'caught_up', position: this.lastPosition })
        // A finished run whose history is all sent (a resume at its end): nothing more will come.
        if (req.finished) return this.end(CLOSE.NORMAL, 'run finished')
        const topics = this.streams.topics
        if (topics && !this.done) {
          // Synchronous: every publish before this went through the gate, every one after goes to the topic.
          if (this.unsubscribe) this.unsubscribe()
          else this.streams.hub.leaveRun(req.runId!, this)
          this.onTopic = true
          topics.join(this.streams.hub, req, this)
          this.streams.metrics.add('runrelay_native_topic_subscribers', {}, 1)
        }
      },
      () => this.end(CLOSE.TRY_AGAIN_LATER, 'history unavailable'),
    )
  }

  send(msg: ServerMessage): void { this.socket.send(JSON.stringify(msg)) }

  protected override deliver(events: RunEvent[]): void {
    if (this.closing) return
    if (this.socket.bufferedAmount > this.streams.opts.maxBufferedBytes) {
      this.streams.metrics.inc('runrelay_slow_consumer_closes_total', { transport: 'ws' })
      this.end(CLOSE.SLOW_CONSUMER, 'slow consumer: reconnect with after')
      // The close frame waits behind what is buffered; a client that never reads would hold
      // that memory until ws's own 30 s close timeout: drop the connection sooner.
      const socket = this.socket
      if (socket.terminate) setTimeout(() => socket.terminate!(), SLOW_CONSUMER_GRACE_MS).unref?.()
      return
    }
    this.socket.send(eventsFrame(events))
    if (this.req.runId !== undefined && events.some(endsRun)) this.end(CLOSE.NORMAL, 'run finished')
  }

  end(code: number, reason: string): void {
    this.closing = true
    this.closed()
    this.socket.close(code, reason)
  }

  private armExpiry(at: number | undefined): void {
    clearTimeout(this.expiry)
    if (at !== undefined) this.expiry = setTimeout(() => this.socket.close(CLOSE.UNAUTHORIZED, 'token expired'), Math.max(0, at - Date.now()))
  }

  message(data: unknown): void {
    // Node's `ws` refuses such frames itself (maxPayload); Deno hands them over whole.
    if (clientFrameTooBig(data)) return this.end(CLOSE.MESSAGE_TOO_BIG, 'message too big')
    void this.onMessage(data).catch(() => {})
  }

  private async onMessage(data: unknown): Promise<void> {
    const parsed = parseClientMessage(data)
    if (!parsed.ok) return this.send(parsed.error)
    const msg = parsed.message
    if (msg.type === 'ping') return this.send({ type: 'pong', at: new Date().toISOString() })
    if (msg.type === 'refresh_token') {
      const refreshed = this.req.refresh ? await this.req.refresh(msg.token) : null
      if (!refreshed) return this.send({ type: 'error', code: 'invalid_token', message: 'token refused' })
      this.armExpiry(refreshed.expiresAt)
      this.send({ type: 'token_refreshed', expiresAt: new Date(refreshed.expiresAt).toISOString() })
    }
  }

  closed(): void {
    if (this.done) return
    this.done = true
    if (this.onTopic) {
      this.streams.topics!.leave(this.req, this)
      this.streams.metrics.add('runrelay_native_topic_subscribers', {}, -1)
    } else if (this.unsubscribe) this.unsubscribe()
    else this.streams.hub.leaveRun(this.req.runId!, this)
    clearTimeout(this.expiry)
    this.streams.metrics.add('runrelay_subscribers', { transport: 'ws', stream: this.req.runId !== undefined ? 'run' : 'feed' }, -1)
    this.streams.forget(this)
  }
}

/** A Hono WSContext as a StreamSocket (runtimes that upgrade through Hono's helper). */
function fromWsContext(ws: WSContext): StreamSocket {
  const raw = ws.raw as { bufferedAmount?: number; terminate?: () => void } | undefined
  return {
    send: (data) => ws.send(data),
    close: (code, reason) => ws.close(code, reason),
    get bufferedAmount() { return raw?.bufferedAmount ?? 0 },
    ...(raw?.terminate ? { terminate: () => raw.terminate!() } : {}),
  }
}

/** WebSocket and SSE streams for Node and Deno, over the in-process hub. */
export class LocalStreams implements Streams {
  private readonly sessions = new Set<WsSession>()
  private readonly sseClosers = new Set<() => void>()
  /** One heartbeat timer for every WebSocket, running while any is open. */
  private heartbeat: ReturnType<typeof setInterval> | undefined

  constructor(
    private readonly store: Store,
    readonly hub: LocalHub,
    /** Hono's upgrade helper (Deno), or a runtime that upgrades accepted requests itself (Node). */
    private readonly upgrade: UpgradeWebSocket | WebSocketAcceptor,
    readonly opts: LocalStreamOptions,
  ) {
    this.metrics = opts.metrics ?? noMetrics
    this.topics = typeof upgrade === 'function' ? undefined : upgrade.topics
  }

  readonly metrics: Metrics
  readonly topics: NativeTopics | undefined

  open(c: Context, req: StreamRequest): Response | Promise<Response> {
    if (req.transport === 'sse') return this.sse(c, req)
    return typeof this.upgrade === 'function' ? this.wsViaHelper(c, this.upgrade, req) : this.wsViaAcceptor(c, this.upgrade, req)
  }

  private subscribe(req: StreamRequest, deliver: (events: RunEvent[]) => void): Session {
    const isRun = req.runId !== undefined
    const gate = new ReplayGate(req.after, isRun ? bySeq : byId, deliver)
    const unsubscribe = isRun
      ? this.hub.subscribeRun(req.runId!, gate)
      : this.hub.subscribeFeed(req.tenantId, req.filter ?? {}, gate)
    return { gate, unsubscribe }
  }

  load(req: StreamRequest) {
    return req.runId !== undefined
      ? (after: number) => this.store.listRunEvents(req.runId!, after, REPLAY_PAGE)
      : (after: number) => this.store.listFeedEvents(req.tenantId, after, req.filter ?? {}, REPLAY_PAGE)
  }

  /** A socket is open: subscribe it (live events are buffered while its history replays). */
  private attach(socket: StreamSocket, req: StreamRequest): WsSession {
    const session = new WsSession(this, socket, req)
    this.sessions.add(session)
    if (!this.heartbeat) {
      this.heartbeat = setInterval(() => this.beat(), this.opts.heartbeatMs)
      this.heartbeat.unref?.()
    }
    session.start(this.opts.heartbeatMs)
    return session
  }

  forget(session: WsSession): void {
    this.sessions.delete(session)
    if (this.sessions.size === 0 && this.heartbeat) { clearInterval(this.heartbeat); this.heartbeat = undefined }
  }

  private beat(): void {
    const frame = JSON.stringify({ type: 'heartbeat', at: new Date().toISOString() } satisfies ServerMessage)
    for (const s of this.sessions) {
      try { s.socket.send(frame) } catch { /* closing: its close handler forgets it */ }
    }
  }

  private upgradeRequired(c: Context): Response {
    return c.json({ error: { code: 'upgrade_required', message: 'use a WebSocket, or Accept: text/event-stream', details: [] } }, 426)
  }

  // No closure here may capture `c`: the session outlives the request.
  private wsViaAcceptor(c: Context, acceptor: WebSocketAcceptor, req: StreamRequest): Response {
    return acceptor.accept(c, (socket) => this.attach(socket, req)) ?? this.upgradeRequired(c)
  }

  private wsViaHelper(c: Context, upgradeWebSocket: UpgradeWebSocket, req: StreamRequest): Promise<Response> {
    let session: WsSession | undefined
    const handler = upgradeWebSocket(() => ({
      onOpen: (_evt, ws) => { session = this.attach(fromWsContext(ws), req) },
      onMessage: (evt) => session?.message(evt.data),
      onClose: () => session?.closed(),
      onError: () => session?.closed(),
    }))
    return Promise.resolve(handler(c, async () => {})).then((res) => res ?? this.upgradeRequired(c))
  }

  private sse(c: Context, req: StreamRequest): Response {
    return streamSSE(c, async (stream) => {
      /** Bytes handed to the stream that the client has not taken yet (the writer resolves once it has). */
      let pendingBytes = 0
      let finished = false
      /** A slow consumer: nothing more is written but its slow_consumer event. */
      let dropped = false
      let resolveDone!: () => void
      const done = new Promise<void>((r) => (resolveDone = r))
      const end = () => { finished = true; resolveDone() }
      let chain: Promise<unknown> = Promise.resolve()
      const write = (text: string, evenIfDropped = false) => {
        pendingBytes += text.length
        chain = chain.then(() => (dropped && !evenIfDropped ? undefined : stream.write(text))).catch(end).finally(() => { pendingBytes -= text.length })
        return chain
      }
      const session = this.subscribe(req, (events) => {
        if (finished) return
        // As on a WebSocket: the check comes before the write, so a replay page or a big event
        // goes out whole to a client that is reading, and a client still behind is dropped.
        if (pendingBytes > this.opts.maxBufferedBytes) {
          dropped = true
          this.metrics.inc('runrelay_slow_consumer_closes_total', { transport: 'sse' })
          write(sseSlowConsumer, true)
          end()
          // The end waits behind what is unread; a client that never reads would keep it: after
          // the grace period the stream fails, which drops the connection and frees the queue.
          // (Hono's `writer` is private in its typings only; stream.abort() would end the response
          // cleanly, behind the same unread bytes.)
          const writer = (stream as unknown as { writer: WritableStreamDefaultWriter }).writer
          setTimeout(() => { writer.abort(slowConsumerAbort()).catch(() => {}) }, SLOW_CONSUMER_GRACE_MS).unref?.()
          return
        }
        for (const e of events) write(sseFrame(e, req.runId ? e.seq : e.id))
        if (req.runId !== undefined && events.some(endsRun)) void chain.then(end)
      })
      this.sseClosers.add(end)
      const gauge = { transport: 'sse', stream: req.runId !== undefined ? 'run' : 'feed' }
      this.metrics.add('runrelay_subscribers', gauge, 1)
      stream.onAbort(end)
      const heartbeat = setInterval(() => write(sseHeartbeatFrame), this.opts.heartbeatMs)
      const expiry = req.expiresAt !== undefined ? setTimeout(end, Math.max(0, req.expiresAt - Date.now())) : undefined
      try {
        await write(sseRetryFrame)
        await session.gate.replay(this.load(req), REPLAY_PAGE)
        // A finished run whose history is all sent (a resume at its end): nothing more will come.
        if (req.finished) void chain.then(end)
        await done
        await chain
      } finally {
        session.unsubscribe()
        clearInterval(heartbeat)
        clearTimeout(expiry)
        this.sseClosers.delete(end)
        this.metrics.add('runrelay_subscribers', gauge, -1)
      }
    })
  }

  get openSockets(): number { return this.sessions.size }

  /** Close every stream with 1012 (service restart): clients reconnect with `after`. */
  closeAll(): void {
    for (const s of [...this.sessions]) {
      s.closing = true
      s.closed()
      s.socket.close(CLOSE.SERVICE_RESTART, 'server restarting')
    }
    for (const end of this.sseClosers) end()
  }
}
