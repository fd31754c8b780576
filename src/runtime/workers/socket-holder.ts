import { DurableObject } from 'cloudflare:workers'
import type { Env } from './env.ts'
import { logger, type Shared } from './shared.ts'
import { answerClientMessage, PING, SocketAttachments, tryClose, type SocketRefresh } from './streams.ts'

/** The attachment fields the shared hibernation handlers read (every socket-holding object has them). */
export interface HeldSocket {
  expiresAt?: number
  scopeKey?: string
}

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
      apply: async (expiresAt) => {
        // Re-read after the await: a replay or pull may have changed the attachment meanwhile.
        const att = host.atts.get(ws)
        if (!att) return false
        host.atts.set(ws, { ...att, expiresAt })
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
  protected shared?: Shared
  protected abstract readonly sockets: SocketHandlers<T>

  constructor(ctx: DurableObjectState, env: Env, private readonly className: string) {
    super(ctx, env)
    // The pong is a constant (the time this object started): the runtime answers without waking it.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair(PING, JSON.stringify({ type: 'pong', at: new Date().toISOString() })))
  }

  /** The shared hibernation handlers, with this object's own reactions to a token refresh and a close. */
  protected socketHandlers(own: Pick<SocketHost<T>, 'tokens' | 'refreshed' | 'closed'>): SocketHandlers<T> {
    return new SocketHandlers<T>({ ...own, atts: this.atts, entry: (handler, fn) => this.entry(handler, fn), log: (msg, handler, extra) => this.log(msg, handler, extra) })
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
