import { DurableObject } from 'cloudflare:workers'
import type { RunEvent } from '../../core/domain.ts'
import { noMetrics } from '../../core/ports.ts'
import { sweepHeld, type StreamRecord, type TokenRef } from '../../core/held-streams.ts'
import { EXPIRED, heartbeatFrame, helloFrame, REVOKED, StreamSession, type SessionHost, type StreamSpec } from '../../core/stream-session.ts'
import { errorJson } from '../../http/errors.ts'
import { tokenInForce, type TokenStanding } from '../../http/tokens.ts'
import type { Env } from './env.ts'
import { getShared, logger, type Shared } from './shared.ts'
import { answerClientMessage, PING, SocketAttachments, sseResponse, tryClose, trySend, type SocketRefresh, type StreamParams, upgraded, WS_OUT } from './streams.ts'

/** A heartbeat alarm that fires this much before its due time still sends the heartbeat. */
const HEARTBEAT_SLACK_MS = 50
/** A failed alarm, or a run tick that failed for a reason not the upstream's (libSQL down, a bug), runs again after this. */
export const ALARM_RETRY_MS = 2_000

/** The attachment fields the shared handlers and the alarm's sweep read: the core's StreamRecord (every socket-holding object has them). */
export type HeldSocket = StreamRecord

/** A new socket's record, from its stream request: not ready, the credential's expiry, scope digest and token. */
export const heldFrom = (p: StreamParams): StreamRecord => ({ ready: false, expiresAt: p.expiresAt, scopeKey: p.scopeKey, token: p.token })

/** What a socket-holding Durable Object (run, run shard, feed) gives the handlers it shares. */
export interface SocketHost<T extends HeldSocket> {
  atts: SocketAttachments<T>
  tokens: SocketRefresh['tokens']
  /** A token refresh was stored in the socket's attachment: rearm the alarm for the new expiry. */
  refreshed(expiresAt: number): Promise<void>
  /** A socket closed and its attachment was dropped: rearm the alarm (and clean up when idle). */
  closed(): Promise<void>
  /** The object's entry wrapper: logs a failure with the class and handler name. */
  entry<R>(handler: string, fn: () => Promise<R>): Promise<R>
  log(msg: string, handler: string, extra: Record<string, unknown>): void
}

/**
 * The WebSocket hibernation handlers (webSocketMessage / Close / Error), the same in every
 * socket-holding object: the object's own handlers delegate here. They never throw (the
 * runtime would log an uncaught error per socket); failures are logged by the host's entry.
 */
export class SocketHandlers<T extends HeldSocket> {
  constructor(private readonly host: SocketHost<T>) {}

  /** A client frame: ping, refresh_token (stored in the attachment), or an error answer. */
  message(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    const { host } = this
    return host.entry('webSocketMessage', () => answerClientMessage(ws, message, {
      tokens: host.tokens,
      scopeKey: () => host.atts.get(ws)?.scopeKey,
      apply: async (expiresAt, token) => {
        // Re-read after the await: a replay or pull may have changed the attachment meanwhile.
        const att = host.atts.get(ws)
        if (!att) return false
        host.atts.set(ws, { ...att, expiresAt, token })
        await host.refreshed(expiresAt)
        return true
      },
    })).catch(() => {})
  }

  /** The client closed: complete the close handshake (1005/1006 have no wire form: 1000), drop the attachment. */
  close(ws: WebSocket, code: number, reason: string): Promise<void> {
    return this.host.entry('webSocketClose', async () => {
      tryClose(ws, code === 1005 || code === 1006 ? 1000 : code, reason)
      this.host.atts.delete(ws)
      await this.host.closed()
    }).catch(() => {})
  }

  /** A socket error: log it and close 1011. */
  error(ws: WebSocket, error: unknown): Promise<void> {
    return this.host.entry('webSocketError', async () => {
      this.host.log('websocket error', 'webSocketError', { error: String(error) })
      tryClose(ws, 1011, 'error')
    }).catch(() => {})
  }
}

/** A Durable Object's `meta` table of JSON values by key (its SQLite storage; created if missing). */
export class MetaTable {
  constructor(private readonly sql: SqlStorage) {
    this.create()
  }

  /** Create the table if missing (again after the storage's deleteAll). */
  create(): void {
    this.sql.exec('CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)')
  }

  get<T>(key: string): T | undefined {
    const row = this.sql.exec<{ value: string }>('SELECT value FROM meta WHERE key = ?', key).toArray()[0]
    return row ? (JSON.parse(row.value) as T) : undefined
  }

  set(key: string, value: unknown): void {
    this.sql.exec('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value', key, JSON.stringify(value))
  }
}

/** A TokenStanding that reads each key and each tenant's revocations once (one sweep checks many sockets' tokens). */
function oncePerSweep(standing: TokenStanding): TokenStanding {
  const memo = new Map<string, Promise<unknown>>()
  const once = <R>(key: string, read: () => Promise<R>): Promise<R> => {
    let p = memo.get(key)
    if (!p) memo.set(key, (p = read()))
    return p as Promise<R>
  }
  return {
    findById: (id) => once(`k:${id}`, () => standing.findById(id)),
    tokenRevocations: (tenantId, now) => once(`t:${tenantId}`, () => standing.tokenRevocations(tenantId, now)),
  }
}

/** Log `msg` with where it happened (`Class.handler`), through the shared logger once it exists. */
export function logAt(shared: Shared | undefined, msg: string, where: string, extra: Record<string, unknown> = {}): void {
  (shared?.log ?? logger(undefined))(msg, { where, ...extra })
}

/**
 * The base of the objects that hold WebSockets (run, run shard, feed): pings answered by the
 * runtime without waking the object, the hibernation handlers (which workerd looks up on the
 * class) delegated to the shared SocketHandlers, and logging under the class's name.
 */
export abstract class SocketHoldingObject<T extends HeldSocket> extends DurableObject<Env> {
  /** Attachments as last written or read by this instance (a socket's JS object is stable while the instance lives). */
  protected readonly atts = new SocketAttachments<T>()
  /** The sockets as the core's held streams (held-streams.ts): their bytes, and their records in the attachments. */
  protected readonly held = { ...WS_OUT, record: (ws: WebSocket) => this.atts.get(ws), save: (ws: WebSocket, rec: T) => this.atts.set(ws, rec) }
  /** The sockets (with `tag`) and their records: the core's held streams. */
  protected heldStreams(tag?: string): Array<readonly [WebSocket, T | null]> {
    return this.ctx.getWebSockets(tag).map((ws) => [ws, this.atts.get(ws)] as const)
  }
  /**
   * SSE streams: core StreamSessions over sseResponse. SSE cannot hibernate (the object stays
   * awake while one is open), so they live in memory and time their own expiry; the alarm
   * gives them heartbeats (and with them the revocation check).
   */
  protected readonly sse = new Set<StreamSession>()
  protected shared?: Shared
  /** The hibernation handlers; the run object gives them its own reactions to a refresh and a close. */
  protected readonly sockets: SocketHandlers<T> = this.socketHandlers({})

  constructor(ctx: DurableObjectState, env: Env, private readonly className: string) {
    super(ctx, env)
    // The pong is a constant (the time this object started): the runtime answers without waking it.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair(PING, JSON.stringify({ type: 'pong', at: new Date().toISOString() })))
  }

  /** The shared hibernation handlers; a token refresh and a close rearm the alarm unless the object reacts otherwise. */
  protected socketHandlers(own: Partial<Pick<SocketHost<T>, 'refreshed' | 'closed'>>): SocketHandlers<T> {
    return new SocketHandlers<T>({
      tokens: async () => (await this.loadShared()).tokens, refreshed: () => this.armAlarm(), closed: () => this.armAlarm(), ...own,
      atts: this.atts, entry: (handler, fn) => this.entry(handler, fn), log: (msg, handler, extra) => this.log(msg, handler, extra),
    })
  }

  async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    await this.sockets.message(ws, message)
  }

  async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    await this.sockets.close(ws, code, reason)
  }

  async webSocketError(ws: WebSocket, error: unknown): Promise<void> {
    await this.sockets.error(ws, error)
  }

  // ---- the one alarm helper: heartbeats and credential expiry --------------------------------

  /** When this instance last sent heartbeats (0: not yet). */
  private lastHeartbeat = 0
  /** The token standing as read by the last heartbeat (oncePerSweep). */
  private standing?: TokenStanding

  /** The shared pieces (config, store, tokens), loaded once per instance. */
  protected async loadShared(): Promise<Shared> {
    return (this.shared ??= await getShared(this.env))
  }

  /**
   * The streams' part of the object's one alarm: the next heartbeat (heartbeats keep their
   * period: connects and closes do not push it back) and the credential expiries. Nothing while
   * no stream is open.
   */
  protected async streamsDue(open: boolean, expiries: Iterable<number | undefined>): Promise<number[]> {
    if (!open) return []
    const { config } = await this.loadShared()
    this.lastHeartbeat ||= Date.now()
    const due = [this.lastHeartbeat + config.RUNRELAY_HEARTBEAT_MS]
    for (const at of expiries) if (at !== undefined) due.push(at)
    return due
  }

  /**
   * The alarm of an object that holds streams only (run shard, feed; the run object has its own):
   * the sweep, the object's safety-net read, then the next alarm. A failure retries by itself
   * (our own retry, not the runtime's: one alarm at the earliest due time).
   */
  async alarm(): Promise<void> {
    await this.entry('alarm', async () => {
      try {
        // Lapsed credentials close before the read; heartbeats go to the ready streams.
        await this.sweepStreams()
        await this.catchUp()
      } finally {
        await this.armAlarm()
      }
    }).catch(async () => { await this.ctx.storage.setAlarm(Date.now() + ALARM_RETRY_MS).catch(() => {}) })
  }

  /** What the alarm reads after the sweep: events a lost notification or delivery did not bring. */
  protected async catchUp(): Promise<void> {}

  /**
   * While streams are open: one alarm at the next heartbeat or WebSocket token expiry (SSE
   * sessions time their own). An earlier alarm still due is kept: heartbeats need not move on
   * every call. The run object adds its ticks and flushes.
   */
  protected async armAlarm(): Promise<void> {
    const sockets = this.ctx.getWebSockets()
    await this.setAlarmAt(await this.streamsDue(sockets.length > 0 || this.sse.size > 0, sockets.map((ws) => this.atts.get(ws)?.expiresAt)), true)
  }

  /**
   * Set the object's one alarm at the earliest due time, or delete it when nothing is due.
   * `keepEarlier`: an alarm already set earlier and still ahead stays (it sweeps and rearms).
   */
  protected async setAlarmAt(due: number[], keepEarlier: boolean): Promise<void> {
    if (due.length === 0) return this.ctx.storage.deleteAlarm()
    const now = Date.now()
    const at = Math.max(now, Math.min(...due))
    const current = await this.ctx.storage.getAlarm()
    if (keepEarlier ? current === null || current > at || current < now : current !== at) await this.ctx.storage.setAlarm(at)
  }

  /**
   * The alarm's pass over the streams: a WebSocket whose credential lapsed (the core's one
   * check) is closed, and when a heartbeat is due the ready streams get it and every token
   * stream's token is checked for revocation (closed with the core's REVOKED when revoked, as
   * on Node: within one heartbeat period). Returns the earliest expiry left among the
   * WebSockets (null: none), and whether this was a heartbeat.
   */
  protected async sweepStreams(): Promise<{ earliest: number | null; beat: boolean }> {
    const held = this.heldStreams()
    const shared = await this.loadShared()
    const now = Date.now()
    const beat = (held.length > 0 || this.sse.size > 0) && now >= this.lastHeartbeat + shared.config.RUNRELAY_HEARTBEAT_MS - HEARTBEAT_SLACK_MS
    if (beat) this.lastHeartbeat = now
    // The decisions are the core session's; this only moves bytes.
    const { expired, beat: beating, tokens, earliest } = sweepHeld(held, now, beat)
    for (const ws of expired) tryClose(ws, EXPIRED.code, EXPIRED.reason)
    if (beating.length) {
      const frame = heartbeatFrame()
      for (const ws of beating) trySend(ws, frame)
    }
    if (!beat) return { earliest, beat }
    // Each key and each tenant's revocations read once for every stream this heartbeat checks.
    const standing = (this.standing = oncePerSweep(shared.store.keys))
    // SSE sessions check their own token as they beat (spec.inForce, from sseSession).
    for (const s of this.sse) if (!s.replaying) s.heartbeat()
    // Not awaited by the alarm: a slow store read delays no tick.
    if (tokens.length) {
      this.ctx.waitUntil(Promise.all(tokens.map(([ws, token]) => tokenInForce(standing, token, now).then(
        (ok) => { if (!ok) tryClose(ws, REVOKED.code, REVOKED.reason) },
        () => {}, // a store fault keeps the stream (as on Node)
      ))))
    }
    return { earliest, beat }
  }

  /** A stream request's entry (`fetch`): logged like every entry, and a failure answers 500 (the Worker passes it on). */
  protected serveStream(fn: () => Promise<Response>): Promise<Response> {
    return this.entry('fetch', fn).catch(() => errorJson(500, 'internal', 'stream failed'))
  }

  /**
   * Accept a WebSocket stream: hibernatable (with the object's tag), its record in the
   * attachment, the hello at once; `start` serves its replay in the background. Returns the 101.
   */
  protected async acceptStream(request: Request, params: StreamParams, tag: string | undefined, record: T, start: (ws: WebSocket) => Promise<void>): Promise<Response> {
    const { config } = await this.loadShared()
    const pair = new WebSocketPair()
    const [client, server] = [pair[0], pair[1]]
    this.ctx.acceptWebSocket(server, tag ? [tag] : undefined)
    this.atts.set(server, record)
    trySend(server, helloFrame(params, config.RUNRELAY_HEARTBEAT_MS))
    this.ctx.waitUntil(start(server))
    return upgraded(request, client)
  }

  /**
   * An SSE stream of this object: a core StreamSession (hello, replay-then-live, slow consumer,
   * expiry, revocation at the heartbeat) over sseResponse, in `sse` until it ends. The caller
   * starts it, and pushes live events to it.
   */
  protected async sseSession(spec: StreamSpec, token: TokenRef | undefined, load: (after: number) => Promise<RunEvent[]>): Promise<{ session: StreamSession; response: Response }> {
    const { config, store } = await this.loadShared()
    const host: SessionHost = {
      heartbeatMs: config.RUNRELAY_HEARTBEAT_MS,
      maxBufferedBytes: config.RUNRELAY_WS_MAX_BUFFERED_BYTES,
      metrics: noMetrics,
      join: (s) => { this.sse.add(s); return undefined },
      leave: (s) => { this.sse.delete(s) },
      load: () => load,
      // Nothing to forget: leaving the set is all (the alarm's next pass sees it gone).
      forget: () => {},
    }
    let session: StreamSession | undefined
    const { socket, response } = sseResponse(() => session?.closed())
    session = new StreamSession(host, socket, token ? { ...spec, inForce: () => tokenInForce(this.standing ?? store.keys, token, Date.now()) } : spec, 'sse')
    return { session, response }
  }

  protected log(msg: string, handler: string, extra: Record<string, unknown> = {}): void {
    logAt(this.shared, msg, `${this.className}.${handler}`, extra)
  }

  /** Run an entry point; log a failure with the handler's name and rethrow it (RPC callers see it). */
  protected async entry<R>(handler: string, fn: () => Promise<R>): Promise<R> {
    try {
      return await fn()
    } catch (err) {
      this.log('handler failed', handler, { error: String((err as Error)?.stack ?? err) })
      throw err
    }
  }
}
