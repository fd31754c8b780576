import { STATUS_CODES, type IncomingMessage, type Server } from 'node:http'
import type { Duplex } from 'node:stream'
import type { Context } from 'hono'
import type { RawData, WebSocket, WebSocketServer } from 'ws'
import { MAX_CLIENT_FRAME_BYTES } from '../../core/protocol.ts'
import type { SocketHandler, StreamSocket, WebSocketAcceptor } from '../local/streams.ts'

const HANDLER = Symbol('runrelay.ws.handler')
type Tracked = WebSocket & { [HANDLER]?: SocketHandler }

// Shared listeners (`this` is the socket): a socket costs no closures of its own.
function onMessage(this: Tracked, data: RawData, isBinary: boolean): void {
  this[HANDLER]?.message(isBinary ? data : data.toString('utf8'))
}
function onClose(this: Tracked): void {
  const h = this[HANDLER]
  this[HANDLER] = undefined
  h?.closed()
}
function ignore(): void {}

/** The upgrade request's headers as an undici `Headers` copy (what the app got before the fast path). */
function fullHeaders(incoming: IncomingMessage): Headers {
  const headers = new Headers()
  for (const [name, value] of Object.entries(incoming.headers)) {
    if (value === undefined) continue
    if (Array.isArray(value)) for (const v of value) headers.append(name, v)
    else headers.append(name, value)
  }
  return headers
}

const INCOMING = Symbol('incoming')
const FULL = Symbol('full')

/**
 * The headers of an upgrade request, read from the IncomingMessage without a copy: `get` and
 * `has` (all the app reads on the upgrade path: credentials, Upgrade, Accept, Origin,
 * Last-Event-ID) answer what the copied undici `Headers` would; anything else builds that
 * copy once and delegates to it (and `get`/`has` follow it from then on).
 */
class UpgradeHeaders {
  [FULL]: Headers | undefined
  readonly [INCOMING]: IncomingMessage
  constructor(incoming: IncomingMessage) { this[INCOMING] = incoming }
  private full(): Headers { return (this[FULL] ??= fullHeaders(this[INCOMING])) }
  get(name: string): string | null {
    if (this[FULL]) return this[FULL].get(name)
    const v = this[INCOMING].headers[name.toLowerCase()]
    return v === undefined ? null : Array.isArray(v) ? v.join(', ') : v
  }
  has(name: string): boolean { return this[FULL] ? this[FULL].has(name) : this[INCOMING].headers[name.toLowerCase()] !== undefined }
  set(name: string, value: string): void { this.full().set(name, value) }
  append(name: string, value: string): void { this.full().append(name, value) }
  delete(name: string): void { this.full().delete(name) }
  getSetCookie(): string[] { return this.full().getSetCookie() }
  forEach(fn: (value: string, name: string, parent: Headers) => void, thisArg?: unknown): void { this.full().forEach(fn, thisArg) }
  entries() { return this.full().entries() }
  keys() { return this.full().keys() }
  values() { return this.full().values() }
  [Symbol.iterator]() { return this.full()[Symbol.iterator]() }
}

/**
 * What the app gets for an upgrade: a `Request` (by prototype) whose url, method (GET, as a
 * Request built without a method), body (none) and headers cost no undici objects; any other
 * member builds the full Request once and answers from it.
 */
class UpgradeRequest {
  [FULL]: Request | undefined
  readonly headers: UpgradeHeaders
  constructor(readonly url: string, incoming: IncomingMessage) { this.headers = new UpgradeHeaders(incoming) }
  get method(): string { return 'GET' }
  get body(): null { return null }
  get bodyUsed(): boolean { return false }
}
/** The Request class UpgradeRequest inherits from (@hono/node-server later puts its own on globalThis). */
const BaseRequest = Request
Object.setPrototypeOf(UpgradeRequest.prototype, BaseRequest.prototype)
for (const key of ['cache', 'credentials', 'destination', 'integrity', 'mode', 'redirect', 'referrer', 'referrerPolicy', 'signal', 'keepalive', 'duplex'] as const) {
  Object.defineProperty(UpgradeRequest.prototype, key, { get(this: UpgradeRequest) { return materialize(this)[key as keyof Request] } })
}
for (const key of ['arrayBuffer', 'blob', 'bytes', 'clone', 'formData', 'json', 'text'] as const) {
  Object.defineProperty(UpgradeRequest.prototype, key, { value(this: UpgradeRequest) { return (materialize(this)[key as keyof Request] as () => unknown).call(this[FULL]) } })
}
function materialize(r: UpgradeRequest): Request {
  if (!r[FULL]) {
    const h = r.headers
    r[FULL] = new Request(r.url, { headers: h[FULL] ?? fullHeaders(h[INCOMING]) })
    // One set of headers from here on: the Request's own.
    h[FULL] = r[FULL].headers
  }
  return r[FULL]
}

type Fetch = (request: Request, env: { incoming: IncomingMessage; outgoing: undefined }) => Response | Promise<Response>

/**
 * WebSockets for runrelay on Node, with `ws` directly. An upgrade request goes through the
 * Hono app like any request (authentication, validation, the run lookup): the app decides.
 * A stream route that accepts it calls `accept`; once the app has answered, the connection
 * is upgraded and the socket handed to the stream. After that nothing of the request (Hono
 * context, Request, IncomingMessage) is kept: each socket holds its session object only.
 * Refused upgrades get the app's answer (status, headers and body) and are closed.
 */
export function createNodeWebSockets(fetch: () => Fetch) {
  // `ws` is loaded by the first upgrade, not at start-up (a server may never see one).
  // maxPayload: a larger client frame is refused as it arrives (close 1009), never buffered whole.
  let wss: Promise<WebSocketServer> | undefined
  const upgrader = () => (wss ??= import('ws').then((ws) => new ws.WebSocketServer({ noServer: true, clientTracking: false, maxPayload: MAX_CLIENT_FRAME_BYTES })))
  const accepted = new WeakMap<IncomingMessage, (socket: StreamSocket) => SocketHandler>()

  const acceptor: WebSocketAcceptor = {
    accept(c: Context, open) {
      const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming
      if (!incoming || c.req.header('upgrade')?.toLowerCase() !== 'websocket') return undefined
      accepted.set(incoming, open)
      // Never sent: the runtime upgrades the connection instead.
      return new Response(null, { status: 200 })
    },
  }

  const refuse = async (socket: Duplex, res: Response) => {
    let body = ''
    try { body = await res.text() } catch { /* no body */ }
    const len = Buffer.byteLength(body)
    let head = `HTTP/1.1 ${res.status} ${STATUS_CODES[res.status] ?? ''}\r\nConnection: close\r\nContent-Length: ${len}\r\n`
    res.headers.forEach((value, name) => {
      if (name !== 'content-length' && name !== 'connection' && name !== 'transfer-encoding') head += `${name}: ${value}\r\n`
    })
    if (!socket.destroyed) socket.end(head + '\r\n' + body)
  }

  const handle = async (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', ignore)
    let res: Response
    try {
      const request = new UpgradeRequest(new URL(req.url ?? '/', 'http://localhost').href, req)
      // Its prototype is Request's (above): the check is true, and tells the compiler what it is.
      if (!(request instanceof BaseRequest)) throw new TypeError('UpgradeRequest is not a Request')
      res = await fetch()(request, { incoming: req, outgoing: undefined })
    } catch {
      accepted.delete(req)
      res = new Response('', { status: 500 })
    }
    const open = accepted.get(req)
    accepted.delete(req)
    if (!open || res.status !== 200 || socket.destroyed) return refuse(socket, res)
    const server = await upgrader()
    if (socket.destroyed) return
    server.handleUpgrade(req, socket, head, (ws: Tracked) => {
      socket.off('error', ignore)
      ws.on('message', onMessage)
      ws.on('close', onClose)
      ws.on('error', onClose)
      ws[HANDLER] = open(ws)
    })
  }

  return {
    acceptor,
    /** Handle upgrade requests of this server. */
    inject(server: Server): void {
      server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => { void handle(req, socket, head).catch(() => socket.destroy()) })
    },
  }
}
