/**
 * Live run status over WebSocket for browsers, Node (22+, or 20 with `ws`), Deno, Bun and
 * Workers. It uses only the global WebSocket, fetch and timers.
 *
 * - reconnects with exponential backoff and full jitter, resuming after the last seq (run)
 *   or event id (feed), so every event arrives once and in order;
 * - treats a connection that sends nothing for 2.5 heartbeats as dead and reconnects;
 * - stops on refusals (4001/4003/4004, or an upgrade refused with 401/403/404) and after a
 *   run's terminal event;
 * - refreshes a subscriber token over the open socket before it expires when given
 *   `refreshToken`.
 */
import { CLOSE, endsRun, parseServerMessage, SUBPROTOCOL, type ClientMessage, type RunEvent, type RunStatus, type ServerMessage } from './protocol.ts'

export type ConnectionState = 'connecting' | 'open' | 'reconnecting' | 'closed'

/** The subset of the WebSocket API the SDK uses (the global one in every supported runtime). */
export interface WebSocketLike {
  readonly readyState: number
  readonly protocol?: string
  send(data: string): void
  close(code?: number, reason?: string): void
  onopen: ((ev: any) => void) | null
  onmessage: ((ev: { data: unknown }) => void) | null
  onclose: ((ev: { code: number; reason: string }) => void) | null
  onerror: ((ev: any) => void) | null
}
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike

export interface SubscribeOptions {
  /** The server's base URL (http(s) or ws(s)); in a browser it defaults to the page's origin. */
  url?: string
  /** An API key or a subscriber token (from `POST /v1/tokens`). */
  token?: string
  /**
   * Called for a fresh subscriber token shortly before the current one expires (and after a
   * 4001): the new one is sent over the open socket, so the stream continues without reconnecting.
   */
  refreshToken?: () => Promise<string>
  /** How the credential travels: as a WebSocket subprotocol (default; keeps it out of URLs and logs) or as `?token=`. */
  tokenTransport?: 'protocol' | 'query'
  /** Reconnect backoff: delay = random(0, min(maxMs, initialMs · 2^attempt)). */
  backoff?: { initialMs?: number; maxMs?: number }
  /** Give up after this many failed connection attempts in a row (default: never). */
  maxRetries?: number
  /** Used until the server's hello says otherwise. */
  heartbeatMs?: number
  /** A WebSocket implementation (default: the global one). */
  WebSocket?: WebSocketConstructor
  fetch?: typeof fetch
  signal?: AbortSignal
  onEvent?: (event: RunEvent) => void
  /** Every parsed server message (hello, caught_up, heartbeat, token_refreshed…). */
  onMessage?: (message: ServerMessage) => void
  onStateChange?: (state: ConnectionState) => void
  /** Transient problems (a dropped connection, a refused token refresh); fatal ones reject `finished`. */
  onError?: (error: Error) => void
}

export interface RunSubscribeOptions extends SubscribeOptions {
  runId: string
  /** Start after this seq (0: the whole history). */
  after?: number
}

export interface FeedSubscribeOptions extends SubscribeOptions {
  workflowId?: string | string[]
  status?: RunStatus | RunStatus[]
  tag?: string | string[]
  /** Start after this event id (default: the live end). */
  after?: number
}

export interface SubscriptionResult {
  /** `completed`: the run reached a terminal status; `closed`: `close()` was called. */
  reason: 'completed' | 'closed'
  /** The terminal status (run streams). */
  status?: RunStatus
  /** The event that ended the run. */
  event?: RunEvent
}

/** A subscription that ended for good: a refusal, or too many failed attempts. */
export class SubscriptionError extends Error {
  /** The close code (4001 unauthorized, 4003 forbidden, 4004 not found; 0 when it gave up retrying). */
  readonly code: number
  readonly reason: string
  constructor(message: string, code: number, reason = '') {
    super(message)
    this.name = 'SubscriptionError'
    this.code = code
    this.reason = reason
  }
}

export interface Subscription extends AsyncIterable<RunEvent> {
  readonly state: ConnectionState
  /** The last delivered position: a seq for a run, an event id for the feed (undefined before the feed's hello). */
  readonly position: number | undefined
  /** Settles when the subscription ends: resolves on completion or close(), rejects with a SubscriptionError on refusal. */
  readonly finished: Promise<SubscriptionResult>
  close(): void
}

const REFUSALS: ReadonlySet<number> = new Set([CLOSE.UNAUTHORIZED, CLOSE.FORBIDDEN, CLOSE.NOT_FOUND])
const HTTP_REFUSAL: Record<number, number> = { 401: CLOSE.UNAUTHORIZED, 403: CLOSE.FORBIDDEN, 404: CLOSE.NOT_FOUND }
const WS_OPEN = 1

/** The `exp` and `iat` (ms) of a JWT, read without verifying (the server verifies). */
function jwtTimes(token: string): { exp: number; iat: number } | null {
  const part = token.split('.')[1]
  if (!part || token.split('.').length !== 3) return null
  try {
    const json = JSON.parse(atob(part.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (part.length % 4)) % 4))) as { exp?: unknown; iat?: unknown }
    if (typeof json.exp !== 'number') return null
    return { exp: json.exp * 1000, iat: typeof json.iat === 'number' ? json.iat * 1000 : json.exp * 1000 - 900_000 }
  } catch {
    return null
  }
}

const asList = (v: string | string[] | undefined): string[] => (v === undefined ? [] : Array.isArray(v) ? v : [v])

function baseUrl(url: string | undefined): string {
  const base = url ?? (globalThis as { location?: { origin?: string } }).location?.origin
  if (!base) throw new TypeError('runrelay: pass `url` (the server base URL)')
  return base.replace(/\/+$/, '')
}

interface Target {
  kind: 'run' | 'feed'
  path: string
  query: URLSearchParams
  /** An HTTP route whose status tells a refusal from a network failure. */
  probePath: string
}

class Sub implements Subscription {
  state: ConnectionState = 'connecting'
  position: number | undefined
  readonly finished: Promise<SubscriptionResult>
  private resolve!: (r: SubscriptionResult) => void
  private reject!: (e: Error) => void
  private done = false
  private ws: WebSocketLike | null = null
  private attempt = 0
  private heartbeatMs: number
  private watchdog: ReturnType<typeof setTimeout> | undefined
  private retryTimer: ReturnType<typeof setTimeout> | undefined
  private refreshTimer: ReturnType<typeof setTimeout> | undefined
  private token: string | undefined
  private terminal: RunEvent | undefined
  private readonly queues = new Set<{ items: RunEvent[]; wake: (() => void) | null }>()
  private readonly base: string
  private readonly WS: WebSocketConstructor
  private readonly opts: SubscribeOptions
  private readonly target: Target

  constructor(opts: SubscribeOptions, target: Target, after: number | undefined) {
    this.opts = opts
    this.target = target
    this.position = after
    this.token = opts.token
    this.heartbeatMs = opts.heartbeatMs ?? 15_000
    this.base = baseUrl(opts.url)
    const WS = opts.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket
    if (!WS) throw new TypeError("runrelay: this runtime has no global WebSocket (Node 20): npm install ws, then pass { WebSocket } from 'ws'")
    this.WS = WS
    this.finished = new Promise<SubscriptionResult>((res, rej) => { this.resolve = res; this.reject = rej })
    // Unobserved rejections are reported through onError, not as unhandled.
    this.finished.catch(() => {})
    if (opts.signal?.aborted) { queueMicrotask(() => this.close()); return }
    opts.signal?.addEventListener('abort', () => this.close(), { once: true })
    // Connect on the next tick so callers can attach iterators first.
    setTimeout(() => this.connect(), 0)
  }

  private setState(s: ConnectionState): void {
    if (this.state === s) return
    this.state = s
    this.opts.onStateChange?.(s)
  }

  private url(): string {
    const q = new URLSearchParams(this.target.query)
    if (this.position !== undefined) q.set('after', String(this.position))
    if (this.token && this.opts.tokenTransport === 'query') q.set('token', this.token)
    const qs = q.toString()
    return `${this.base.replace(/^http/, 'ws')}${this.target.path}${qs ? `?${qs}` : ''}`
  }

  private async connect(): Promise<void> {
    if (this.done) return
    // An expired token would be refused: get a fresh one first when we can.
    const times = this.token ? jwtTimes(this.token) : null
    if (times && times.exp <= Date.now() + 1_000 && this.opts.refreshToken) {
      try { this.token = await this.opts.refreshToken() } catch (err) { this.opts.onError?.(err as Error) }
      if (this.done) return
    }
    const protocols = this.token && this.opts.tokenTransport !== 'query' ? [SUBPROTOCOL, `runrelay.token.${this.token}`] : undefined
    let ws: WebSocketLike
    try {
      ws = new this.WS(this.url(), protocols)
    } catch (err) {
      this.opts.onError?.(err as Error)
      return this.retry(false)
    }
    this.ws = ws
    let hello = false
    const lost = (code: number, reason: string) => {
      if (this.ws !== ws) return
      this.ws = null
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null
      clearTimeout(this.watchdog)
      clearTimeout(this.refreshTimer)
      void this.onLost(code, reason, hello)
    }
    /** Give up on this socket (handlers detached first: closing a connecting socket may fire error again). */
    const drop = (reason: string) => {
      lost(1006, reason)
      try { ws.close() } catch { /* already closed */ }
    }
    // Until the hello, allow for a slow handshake; after it, 2.5 heartbeats of silence means dead.
    this.arm(Math.max(10_000, this.heartbeatMs * 2.5), () => drop('no answer'))
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return
      const msg = parseServerMessage(ev.data)
      this.arm(this.heartbeatMs * 2.5, () => drop('heartbeat timeout'))
      if (!msg) return
      this.opts.onMessage?.(msg)
      switch (msg.type) {
        case 'hello':
          hello = true
          this.attempt = 0
          this.heartbeatMs = msg.heartbeatMs
          if (this.position === undefined) this.position = msg.after
          this.arm(this.heartbeatMs * 2.5, () => drop('heartbeat timeout'))
          this.setState('open')
          this.scheduleRefresh(ws)
          break
        case 'event': this.deliver(msg.event); break
        case 'batch': for (const e of msg.events) this.deliver(e); break
        case 'token_refreshed': this.scheduleRefresh(ws); break
        case 'error': this.opts.onError?.(new Error(`${msg.code}: ${msg.message}`)); break
        default: break
      }
    }
    let opened = false
    ws.onopen = () => { opened = true }
    ws.onclose = (ev) => lost(ev.code, ev.reason)
    // Some implementations (Node's undici) fire no close after a failed handshake; later errors are followed by a close.
    ws.onerror = () => { if (!opened) drop('connection failed') }
  }

  private arm(ms: number, fire: () => void): void {
    clearTimeout(this.watchdog)
    this.watchdog = setTimeout(fire, ms)
  }

  private deliver(e: RunEvent): void {
    if (this.done) return
    const pos = this.target.kind === 'run' ? e.seq : e.id
    // Resume replays from `after`; anything at or before it was delivered already.
    if (this.position !== undefined && pos <= this.position) return
    this.position = pos
    if (this.target.kind === 'run' && endsRun(e)) this.terminal = e
    try { this.opts.onEvent?.(e) } catch (err) { this.opts.onError?.(err as Error) }
    for (const q of this.queues) { q.items.push(e); q.wake?.() }
  }

  private scheduleRefresh(ws: WebSocketLike): void {
    clearTimeout(this.refreshTimer)
    const times = this.token ? jwtTimes(this.token) : null
    if (!times || !this.opts.refreshToken) return
    const lead = Math.max(1_000, Math.min(60_000, (times.exp - times.iat) * 0.2))
    this.refreshTimer = setTimeout(async () => {
      try {
        const next = await this.opts.refreshToken!()
        this.token = next
        if (this.ws === ws && ws.readyState === WS_OPEN) ws.send(JSON.stringify({ type: 'refresh_token', token: next } satisfies ClientMessage))
      } catch (err) {
        this.opts.onError?.(err as Error)
      }
    }, Math.max(0, times.exp - lead - Date.now()))
  }

  private async onLost(code: number, reason: string, hadHello: boolean): Promise<void> {
    if (this.done) return
    if (this.terminal) return this.finish({ reason: 'completed', status: this.terminal.status, event: this.terminal })
    let refusal = REFUSALS.has(code) ? code : 0
    // A refused upgrade looks like a network failure to a WebSocket; ask over HTTP which it was.
    if (!refusal && !hadHello) refusal = await this.probe()
    if (this.done) return
    if (refusal === CLOSE.UNAUTHORIZED && this.opts.refreshToken && this.attempt === 0) {
      try {
        this.token = await this.opts.refreshToken()
        this.attempt++
        return void this.connect()
      } catch (err) { this.opts.onError?.(err as Error) }
    }
    if (refusal) return this.fail(new SubscriptionError(`runrelay refused the subscription (${refusal}${reason ? `: ${reason}` : ''})`, refusal, reason))
    this.opts.onError?.(new Error(`connection lost (${code}${reason ? `: ${reason}` : ''}); reconnecting`))
    this.retry(hadHello)
  }

  private async probe(): Promise<number> {
    const f = this.opts.fetch ?? globalThis.fetch
    if (!f) return 0
    try {
      const ctrl = new AbortController()
      const timer = setTimeout(() => ctrl.abort(), 5_000)
      const res = await f(`${this.base.replace(/^ws/, 'http')}${this.target.probePath}`, {
        headers: this.token ? { authorization: `Bearer ${this.token}` } : {}, signal: ctrl.signal,
      }).finally(() => clearTimeout(timer))
      await res.body?.cancel().catch(() => {})
      return HTTP_REFUSAL[res.status] ?? 0
    } catch {
      return 0
    }
  }

  private retry(hadHello: boolean): void {
    if (this.done) return
    if (hadHello) this.attempt = 0
    if (this.opts.maxRetries !== undefined && this.attempt >= this.opts.maxRetries) {
      return this.fail(new SubscriptionError(`gave up after ${this.attempt} failed attempts`, 0))
    }
    this.setState('reconnecting')
    const initial = this.opts.backoff?.initialMs ?? 500
    const max = this.opts.backoff?.maxMs ?? 15_000
    const delay = Math.random() * Math.min(max, initial * 2 ** this.attempt)
    this.attempt++
    this.retryTimer = setTimeout(() => void this.connect(), delay)
  }

  private stop(): void {
    this.done = true
    clearTimeout(this.watchdog)
    clearTimeout(this.retryTimer)
    clearTimeout(this.refreshTimer)
    const ws = this.ws
    this.ws = null
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = null
      // A handler, not null: `ws` (Node 20) reports a close before the handshake as an 'error'
      // event on the next tick, which with no listener is an uncaught exception.
      ws.onerror = () => {}
      try { ws.close(1000, 'client closed') } catch { /* ignore */ }
    }
    this.setState('closed')
    for (const q of this.queues) q.wake?.()
  }

  private finish(r: SubscriptionResult): void {
    if (this.done) return
    this.stop()
    this.resolve(r)
  }

  private error: Error | undefined
  private fail(err: Error): void {
    if (this.done) return
    this.error = err
    this.stop()
    this.opts.onError?.(err)
    this.reject(err)
  }

  close(): void {
    this.finish({ reason: 'closed' })
  }

  [Symbol.asyncIterator](): AsyncIterator<RunEvent> {
    const q: { items: RunEvent[]; wake: (() => void) | null } = { items: [], wake: null }
    this.queues.add(q)
    const next = async (): Promise<IteratorResult<RunEvent>> => {
      for (;;) {
        const item = q.items.shift()
        if (item) return { value: item, done: false }
        if (this.done) {
          this.queues.delete(q)
          if (this.error) throw this.error
          return { value: undefined, done: true }
        }
        await new Promise<void>((r) => (q.wake = r))
        q.wake = null
      }
    }
    return {
      next,
      return: async () => { this.queues.delete(q); return { value: undefined, done: true } },
    }
  }
}

/** Subscribe to one run: its history after `after` (default: all of it), then live events until it finishes. */
export function subscribeRun(opts: RunSubscribeOptions): Subscription {
  const id = encodeURIComponent(opts.runId)
  return new Sub(opts, { kind: 'run', path: `/v1/runs/${id}/stream`, query: new URLSearchParams(), probePath: `/v1/runs/${id}` }, opts.after ?? 0)
}

/** Subscribe to the tenant feed (or a token's scope), filtered by workflow, status and tag; from the live end unless `after` is given. */
export function subscribeFeed(opts: FeedSubscribeOptions): Subscription {
  const q = new URLSearchParams()
  for (const [k, v] of [['workflow_id', asList(opts.workflowId)], ['status', asList(opts.status)], ['tag', asList(opts.tag)]] as const) {
    if (v.length) q.set(k, v.join(','))
  }
  const qs = q.toString()
  return new Sub(opts, { kind: 'feed', path: '/v1/stream', query: q, probePath: `/v1/stream${qs ? `?${qs}` : ''}` }, opts.after)
}

export interface Completion {
  runId: string
  status: RunStatus
  /** The terminal event. */
  event: RunEvent
}

/**
 * Resolve when the run finishes (whatever its terminal status), across reconnects. Rejects on
 * a refusal, on `timeoutMs`, or if the subscription is closed first.
 */
export async function waitForCompletion(run: RunSubscribeOptions | Subscription, opts: { timeoutMs?: number } = {}): Promise<Completion> {
  const sub = 'finished' in run ? run : subscribeRun(run)
  let timer: ReturnType<typeof setTimeout> | undefined
  try {
    const result = await (opts.timeoutMs === undefined ? sub.finished : Promise.race([
      sub.finished,
      new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`run did not finish within ${opts.timeoutMs} ms`)), opts.timeoutMs) }),
    ]))
    if (result.reason !== 'completed' || !result.event) throw new Error('the subscription was closed before the run finished')
    return { runId: result.event.run_id, status: result.event.status, event: result.event }
  } finally {
    clearTimeout(timer)
    if (sub !== run) sub.close()
  }
}
