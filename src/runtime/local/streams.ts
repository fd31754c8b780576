import type { Context } from 'hono'
import { streamSSE } from 'hono/streaming'
import type { UpgradeWebSocket, WSContext } from 'hono/ws'
import type { RunEvent } from '../../core/domain.ts'
import { noMetrics, type Metrics } from '../../core/ports.ts'
import { CLOSE } from '../../core/protocol.ts'
import { REPLAY_PAGE, SseWriter, StreamSession, type SessionHost, type SessionSocket, type Transport } from '../../core/stream-session.ts'
import type { Store } from '../../db/store.ts'
import { errorBody } from '../../http/errors.ts'
import type { StreamRequest, Streams } from '../../http/hosts.ts'
import type { LocalHub } from './hub.ts'

export interface LocalStreamOptions {
  heartbeatMs: number
  /** Bytes a WebSocket or SSE subscriber may have unread before it counts as a slow consumer. */
  maxBufferedBytes: number
  metrics?: Metrics
}

/** What a stream writes to: `ws`'s WebSocket on Node, Bun's, or an adapter over Hono's WSContext (Deno). */
export type StreamSocket = SessionSocket

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

/** WebSocket and SSE streams for Node, Deno and Bun, over the in-process hub: one StreamSession per subscriber. */
export class LocalStreams implements Streams, SessionHost {
  private readonly sessions = new Set<Session>()
  /** One heartbeat timer for every stream, running while any is open. */
  private heartbeat: ReturnType<typeof setInterval> | undefined
  readonly metrics: Metrics
  readonly topics: NativeTopics | undefined
  readonly heartbeatMs: number
  readonly maxBufferedBytes: number

  constructor(
    private readonly store: Store,
    readonly hub: LocalHub,
    /** Hono's upgrade helper (Deno), or a runtime that upgrades accepted requests itself (Node, Bun). */
    private readonly upgrade: UpgradeWebSocket | WebSocketAcceptor,
    opts: LocalStreamOptions,
  ) {
    this.metrics = opts.metrics ?? noMetrics
    this.topics = typeof upgrade === 'function' ? undefined : upgrade.topics
    this.heartbeatMs = opts.heartbeatMs
    this.maxBufferedBytes = opts.maxBufferedBytes
  }

  open(c: Context, req: StreamRequest): Response | Promise<Response> {
    if (req.transport === 'sse') return this.sse(c, req)
    return typeof this.upgrade === 'function' ? this.wsViaHelper(c, this.upgrade, req) : this.wsViaAcceptor(c, this.upgrade, req)
  }

  // ---- SessionHost ----

  join(s: Session): (() => void) | undefined {
    const req = s.spec
    if (req.runId === undefined) return this.hub.subscribeFeed(req.tenantId, req.filter ?? {}, s)
    this.hub.joinRun(req.runId, s)
    return undefined
  }

  leave(s: Session): void { this.hub.leaveRun(s.spec.runId!, s) }

  load(s: Session): (after: number) => Promise<RunEvent[]> {
    const req = s.spec
    return req.runId !== undefined
      ? (after) => this.store.runs.events(req.runId!, after, REPLAY_PAGE)
      : (after) => this.store.runs.feedEvents(req.tenantId, after, req.filter ?? {}, REPLAY_PAGE)
  }

  toTopic(s: Session): boolean {
    if (!this.topics) return false
    this.topics.join(this.hub, s.spec, s)
    this.metrics.add('runrelay_native_topic_subscribers', {}, 1)
    return true
  }

  fromTopic(s: Session): void {
    this.topics!.leave(s.spec, s)
    this.metrics.add('runrelay_native_topic_subscribers', {}, -1)
  }

  async refresh(s: Session, token: string): Promise<number | null> {
    const refreshed = s.spec.refresh ? await s.spec.refresh(token) : null
    return refreshed ? refreshed.expiresAt : null
  }

  forget(s: Session): void {
    this.sessions.delete(s)
    if (this.sessions.size === 0 && this.heartbeat) { clearInterval(this.heartbeat); this.heartbeat = undefined }
  }

  // ---- transports ----

  /** A socket (or SSE response) is open: its session subscribes (live events wait while its history replays). */
  private attach(socket: SessionSocket, req: StreamRequest, transport: Transport): Session {
    const session = new StreamSession(this, socket, req, transport) as Session
    this.sessions.add(session)
    if (!this.heartbeat) {
      this.heartbeat = setInterval(() => { for (const s of this.sessions) s.heartbeat() }, this.heartbeatMs)
      this.heartbeat.unref?.()
    }
    return session
  }

  private upgradeRequired(c: Context): Response {
    return c.json(errorBody('upgrade_required', 'use a WebSocket, or Accept: text/event-stream'), 426)
  }

  // No closure here may capture `c`: the session outlives the request.
  private wsViaAcceptor(c: Context, acceptor: WebSocketAcceptor, req: StreamRequest): Response {
    return acceptor.accept(c, (socket) => {
      const session = this.attach(socket, req, 'ws')
      void session.start()
      return session
    }) ?? this.upgradeRequired(c)
  }

  private wsViaHelper(c: Context, upgradeWebSocket: UpgradeWebSocket, req: StreamRequest): Promise<Response> {
    let session: Session | undefined
    const handler = upgradeWebSocket(() => ({
      onOpen: (_evt, ws) => { session = this.attach(fromWsContext(ws), req, 'ws'); void session.start() },
      onMessage: (evt) => session?.message(evt.data),
      onClose: () => session?.closed(),
      onError: () => session?.closed(),
    }))
    return Promise.resolve(handler(c, async () => {})).then((res) => res ?? this.upgradeRequired(c))
  }

  private sse(c: Context, req: StreamRequest): Response {
    return streamSSE(c, async (stream) => {
      let finish!: () => void
      const ended = new Promise<void>((r) => (finish = r))
      const socket = new SseWriter({
        write: (text) => stream.write(text),
        end: () => finish(),
        // Hono's `writer` is private in its typings only; stream.abort() would end the response
        // cleanly, behind the same unread bytes.
        fail: (reason) => { (Reflect.get(stream, 'writer') as WritableStreamDefaultWriter).abort(reason).catch(() => {}) },
      })
      stream.onAbort(() => { socket.ended = true; finish() })
      const session = this.attach(socket, req, 'sse')
      try {
        await session.start()
        await ended
        await socket.flushed
      } finally {
        session.closed()
      }
    })
  }

  get openSockets(): number {
    let n = 0
    for (const s of this.sessions) if (s.transport === 'ws') n++
    return n
  }

  /** Close every stream with 1012 (service restart): clients reconnect with `after`. */
  closeAll(): void {
    for (const s of [...this.sessions]) s.end(CLOSE.SERVICE_RESTART, 'server restarting')
  }
}

/** A session of this host: its spec is the stream request. */
type Session = StreamSession & { readonly spec: StreamRequest }
