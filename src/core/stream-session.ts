import type { RunEvent } from './domain.ts'
import { endsRun, eventsFrame, sseFrame, sseHeartbeatFrame, sseRetryFrame, sseSlowConsumer } from './frames.ts'
import type { Metrics } from './ports.ts'
import { CLOSE, clientFrameTooBig, parseClientMessage, PROTOCOL_VERSION, type ServerMessage } from './protocol.ts'
import { ReplayGate } from './replay.ts'

/**
 * The stream session, written once for every runtime and transport: the hello, replay-then-live
 * (each event once, in order, after `after` / Last-Event-ID), slow consumers, token expiry and
 * refresh, revocation, heartbeats and close codes. Runtimes give it a SessionSocket (a
 * WebSocket, or an SSE writer) that only moves bytes. Durable Objects' hibernated WebSockets
 * keep no session object (a woken object would rebuild one per socket): each keeps a
 * StreamRecord in its attachment, and held-streams.ts makes the same decisions on those records
 * (with this module's frames, closes and answerClientMessage).
 */

/** History is read in pages of this many events. */
export const REPLAY_PAGE = 500
/** How long a slow consumer has to read up to its close before the connection is dropped. */
export const SLOW_CONSUMER_GRACE_MS = 5_000

/** What a session knows of its stream: run or feed, where it resumes, and when its credential lapses. */
export interface StreamSpec {
  /** A run stream (positions are seqs); the tenant feed when absent (positions are event ids). */
  runId?: string
  /** Resume after this position. */
  after: number
  /** When the credential used to open the stream stops being valid (ms epoch). */
  expiresAt?: number
  /** A run stream of a run that had finished when it was opened: it ends once its replay is sent. */
  finished?: boolean
  /** Token streams: whether the token is still in force (not revoked); asked at every heartbeat. */
  inForce?: () => Promise<boolean>
}

/** The first frame of a WebSocket stream. */
export function helloFrame(spec: StreamSpec, heartbeatMs: number): string {
  const msg: ServerMessage = { type: 'hello', protocol: PROTOCOL_VERSION, stream: spec.runId ? 'run' : 'feed', run_id: spec.runId, after: spec.after, heartbeatMs }
  return JSON.stringify(msg)
}

/** A WebSocket heartbeat (every heartbeatMs while the stream is open). */
export const heartbeatFrame = (): string => JSON.stringify({ type: 'heartbeat', at: new Date().toISOString() } satisfies ServerMessage)

/** The frame that ends a replay: live events follow. */
export const caughtUpFrame = (position: number): string => JSON.stringify({ type: 'caught_up', position } satisfies ServerMessage)

/**
 * Whether a stream's credential has lapsed at `now`: the one check every runtime makes when a
 * stream's expiry comes due (a revocation check plugs in here as an injected CredentialCheck).
 */
export type CredentialCheck = (expiresAt: number | undefined, now: number) => boolean
/** The default check: the credential's expiry has passed. */
export const credentialLapsed: CredentialCheck = (expiresAt, now) => expiresAt !== undefined && expiresAt <= now

/** The close of a stream whose credential lapsed. */
export const EXPIRED = { code: CLOSE.UNAUTHORIZED, reason: 'token expired' } as const
/** The close of a stream whose token (or the key that minted it) was revoked: the expiry's code, its own reason. */
export const REVOKED = { code: CLOSE.UNAUTHORIZED, reason: 'token revoked' } as const
/** The close of a run stream once its run finished and every event was sent. */
export const FINISHED = { code: CLOSE.NORMAL, reason: 'run finished' } as const
/** The close of a stream whose history could not be read. */
export const UNAVAILABLE = { code: CLOSE.TRY_AGAIN_LATER, reason: 'history unavailable' } as const
/** The close of a WebSocket slow consumer. */
export const SLOW = { code: CLOSE.SLOW_CONSUMER, reason: 'slow consumer: reconnect with after' } as const

/** Where a client message's answer goes, and how a token refresh is verified and applied. */
export interface ClientMessageTarget {
  send(text: string): void
  close(code: number, reason: string): void
  /** A refresh token's new expiry once verified for this stream, or null when refused. */
  refresh(token: string): Promise<number | null>
  /** Take the new expiry; false when the socket is gone (nothing is answered). */
  apply(expiresAt: number): boolean | Promise<boolean>
}

/**
 * A client's frame on a WebSocket stream, the same everywhere: too big → close 1009, `ping` →
 * pong, malformed → bad_message, `refresh_token` → verified, applied and answered.
 * `binaryAsText`: a binary frame is read as UTF-8 text (Workers).
 */
export async function answerClientMessage(data: unknown, to: ClientMessageTarget, binaryAsText = false): Promise<void> {
  if (clientFrameTooBig(data)) return to.close(CLOSE.MESSAGE_TOO_BIG, 'message too big')
  const send = (msg: ServerMessage) => to.send(JSON.stringify(msg))
  // workerd hands text-typed binary frames over as ArrayBuffer; elsewhere a binary frame is refused as malformed.
  const parsed = parseClientMessage(binaryAsText && data instanceof ArrayBuffer ? new TextDecoder().decode(data) : data)
  if (!parsed.ok) return send(parsed.error)
  const msg = parsed.message
  if (msg.type === 'ping') return send({ type: 'pong', at: new Date().toISOString() })
  if (msg.type !== 'refresh_token') return
  const expiresAt = await to.refresh(msg.token)
  if (expiresAt === null) return send({ type: 'error', code: 'invalid_token', message: 'token refused' })
  if (!(await to.apply(expiresAt))) return
  send({ type: 'token_refreshed', expiresAt: new Date(expiresAt).toISOString() })
}

/** The transports a session speaks. */
export type Transport = 'ws' | 'sse'

/** What a session writes to: a WebSocket, or an SSE writer. Adapters only move bytes. */
export interface SessionSocket {
  /** Bytes handed to the socket that the client has not read yet. */
  readonly bufferedAmount: number
  send(text: string): void
  /** Close the stream (an SSE writer ends it; a slow consumer's first gets its slow_consumer event). */
  close(code: number, reason: string): void
  /** Drop the connection at once (a slow consumer that did not read up to its close in time). */
  terminate?(): void
}

/** The frames of a transport. */
interface Wire {
  open(spec: StreamSpec, heartbeatMs: number): string
  events(events: RunEvent[], run: boolean): string
  caughtUp(position: number): string | null
  heartbeat(): string
}

const WIRES: Record<Transport, Wire> = {
  ws: { open: helloFrame, events: (events) => eventsFrame(events), caughtUp: caughtUpFrame, heartbeat: heartbeatFrame },
  sse: {
    open: () => sseRetryFrame,
    events: (events, run) => events.map((e) => sseFrame(e, run ? e.seq : e.id)).join(''),
    caughtUp: () => null,
    heartbeat: () => sseHeartbeatFrame,
  },
}

/** Where an SSE writer's bytes go: the runtime's response body. */
export interface SseOut {
  /** Resolves once the client has taken the text (rejects when it is gone). */
  write(text: string): Promise<unknown>
  /** End the response (after every write). Called once or more. */
  end(): void
  /** Fail the response at once: the connection drops and what is queued is freed. */
  fail(reason: Error): void
}

/**
 * An SSE response as a SessionSocket, the same on every runtime: writes go out in order behind
 * the client's reads, `bufferedAmount` counts what it has not taken yet, a close ends the
 * response once what was written is out, and a slow consumer's close (4008) writes its
 * slow_consumer event and nothing after it.
 */
export class SseWriter implements SessionSocket {
  bufferedAmount = 0
  /** Nothing more is sent. */
  ended = false
  /** A slow consumer: writes still queued are skipped; only its slow_consumer event goes. */
  private dropped = false
  private chain: Promise<unknown> = Promise.resolve()

  constructor(private readonly out: SseOut) {}

  send(text: string): void { if (!this.ended) this.write(text) }

  private write(text: string, evenIfDropped = false): void {
    this.bufferedAmount += text.length
    this.chain = this.chain
      .then(() => (this.dropped && !evenIfDropped ? undefined : this.out.write(text)))
      .catch(() => { this.ended = true; this.out.end() })
      .finally(() => { this.bufferedAmount -= text.length })
  }

  /** Resolves once every write so far is done (or failed). */
  get flushed(): Promise<unknown> { return this.chain }

  close(code: number): void {
    if (this.ended) return
    this.ended = true
    if (code === CLOSE.SLOW_CONSUMER) {
      this.dropped = true
      this.write(sseSlowConsumer, true)
    }
    void this.chain.then(() => this.out.end())
  }

  terminate(): void {
    // A premature close: what @hono/node-server treats as a client gone (no error logged).
    this.out.fail(Object.assign(new Error('slow consumer dropped'), { code: 'ERR_STREAM_PREMATURE_CLOSE' }))
  }
}

/** What a runtime gives its sessions: live events, history, and where caught-up sessions may move. */
export interface SessionHost {
  readonly heartbeatMs: number
  /** Unread bytes past which a subscriber is a slow consumer. */
  readonly maxBufferedBytes: number
  readonly metrics: Metrics
  /** Subscribe the session to live events; returns how to leave (or nothing, when `leave` knows). */
  join(s: StreamSession): (() => void) | undefined
  leave(s: StreamSession): void
  /** The stream's history after a position, a page at a time. */
  load(s: StreamSession): (after: number) => Promise<RunEvent[]>
  /**
   * A caught-up WebSocket session may move from the host's fan-out to native topics (Bun):
   * true when it moved (synchronously: nothing is lost or repeated between the two).
   */
  toTopic?(s: StreamSession): boolean
  /** A session on a native topic closed. */
  fromTopic?(s: StreamSession): void
  /** The session closed: forget it. */
  forget(s: StreamSession): void
  /** Verify a refresh token for this stream: its new expiry, or null. */
  refresh?(s: StreamSession, token: string): Promise<number | null>
  /** The credential check (expiry; revocation where it plugs in). Defaults to credentialLapsed. */
  lapsed?: CredentialCheck
}

/**
 * One subscriber's stream over one socket. It is its own replay gate (the host pushes live
 * events to the session itself, so a socket costs one object, not a gate and a closure besides):
 * it joins the live events before reading history, and delivers each event once, in order.
 */
export class StreamSession extends ReplayGate {
  /** Nothing more is sent but the close. */
  closing = false
  private done = false
  /** On a native topic (no longer in the host's fan-out). */
  private onTopic = false
  private unsubscribe: (() => void) | undefined
  private expiry: ReturnType<typeof setTimeout> | undefined
  private expiresAt: number | undefined
  private readonly wire: Wire

  constructor(private readonly host: SessionHost, readonly socket: SessionSocket, readonly spec: StreamSpec, readonly transport: Transport) {
    const isRun = spec.runId !== undefined
    super(spec.after, isRun ? bySeq : byId)
    this.wire = WIRES[transport]
    this.unsubscribe = host.join(this)
    host.metrics.add('runrelay_subscribers', this.gauge(), 1)
  }

  private gauge() { return { transport: this.transport, stream: this.spec.runId !== undefined ? 'run' : 'feed' } }

  /** The opening frame, the expiry timer, then the replay; once caught up, live events (or the end of a finished run). */
  start(): Promise<void> {
    const { spec, host } = this
    this.socket.send(this.wire.open(spec, host.heartbeatMs))
    this.armExpiry(spec.expiresAt)
    return this.replay(host.load(this), REPLAY_PAGE).then(
      () => {
        if (this.closing) return
        const caughtUp = this.wire.caughtUp(this.lastPosition)
        if (caughtUp !== null) this.socket.send(caughtUp)
        // A finished run whose history is all sent (a resume at its end): nothing more will come.
        if (spec.finished) return this.end(FINISHED.code, FINISHED.reason)
        if (this.transport === 'ws' && !this.done && host.toTopic) {
          const unsubscribe = this.unsubscribe
          if (host.toTopic(this)) {
            if (unsubscribe) unsubscribe()
            else host.leave(this)
            this.onTopic = true
          }
        }
      },
      () => this.end(UNAVAILABLE.code, UNAVAILABLE.reason),
    )
  }

  protected override deliver(events: RunEvent[]): void {
    if (this.closing) return
    // Checked before the write, so a replay page or a big event goes out whole to a client
    // that is reading, and a client still behind is dropped.
    if (this.socket.bufferedAmount > this.host.maxBufferedBytes) {
      this.host.metrics.inc('runrelay_slow_consumer_closes_total', { transport: this.transport })
      this.end(SLOW.code, SLOW.reason)
      // The close waits behind what is buffered; a client that never reads would hold that
      // memory: drop the connection after the grace period.
      const socket = this.socket
      if (socket.terminate) setTimeout(() => socket.terminate!(), SLOW_CONSUMER_GRACE_MS).unref?.()
      return
    }
    this.socket.send(this.wire.events(events, this.spec.runId !== undefined))
    if (this.spec.runId !== undefined && events.some(endsRun)) this.end(FINISHED.code, FINISHED.reason)
  }

  /** A heartbeat (the host's one timer calls every session). */
  heartbeat(): void {
    try { this.socket.send(this.wire.heartbeat()) } catch { /* closing: its close handler forgets it */ }
    // Revocation is checked at the heartbeat's pace (a read-cached lookup); a store fault keeps the stream.
    this.spec.inForce?.().then((ok) => { if (!ok && !this.closing) this.end(REVOKED.code, REVOKED.reason) }, () => {})
  }

  /** Close the stream with a code; the session leaves its fan-out at once. */
  end(code: number, reason: string): void {
    this.closing = true
    this.closed()
    this.socket.close(code, reason)
  }

  private armExpiry(at: number | undefined): void {
    clearTimeout(this.expiry)
    this.expiry = undefined
    this.expiresAt = at
    if (at !== undefined) this.expiry = setTimeout(() => this.checkCredential(at), Math.max(0, at - Date.now()))
  }

  /** The expiry came due: close the stream when its credential lapsed. */
  private checkCredential(dueAt: number): void {
    const lapsed = this.host.lapsed ?? credentialLapsed
    // A timer may fire a little early: the check is made at the due time at the earliest.
    if (lapsed(this.expiresAt, Math.max(Date.now(), dueAt))) this.socket.close(EXPIRED.code, EXPIRED.reason)
  }

  /** A client frame (WebSocket streams). */
  message(data: unknown): void {
    // Node's `ws` refuses too-big frames itself (maxPayload); Deno hands them over whole.
    void answerClientMessage(data, {
      send: (text) => this.socket.send(text),
      close: (code, reason) => this.end(code, reason),
      refresh: (token) => (this.host.refresh ? this.host.refresh(this, token) : Promise.resolve(null)),
      apply: (expiresAt) => { this.armExpiry(expiresAt); return true },
    }).catch(() => {})
  }

  /** The socket closed or failed (called once or more). */
  closed(): void {
    if (this.done) return
    this.done = true
    if (this.onTopic) this.host.fromTopic?.(this)
    else if (this.unsubscribe) this.unsubscribe()
    else this.host.leave(this)
    clearTimeout(this.expiry)
    this.host.metrics.add('runrelay_subscribers', this.gauge(), -1)
    this.host.forget(this)
  }
}

const bySeq = (e: RunEvent) => e.seq
const byId = (e: RunEvent) => e.id
