import { STATUS_CODES, type IncomingMessage, type Server } from 'node:http'
import type { Duplex } from 'node:stream'
import type { Context } from 'hono'
import { WebSocketServer, type RawData, type WebSocket } from 'ws'
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
  const wss = new WebSocketServer({ noServer: true, clientTracking: false })
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
      const headers = new Headers()
      for (const [name, value] of Object.entries(req.headers)) {
        if (value === undefined) continue
        if (Array.isArray(value)) for (const v of value) headers.append(name, v)
        else headers.append(name, value)
      }
      res = await fetch()(new Request(new URL(req.url ?? '/', 'http://localhost'), { headers }), { incoming: req, outgoing: undefined })
    } catch {
      accepted.delete(req)
      res = new Response('', { status: 500 })
    }
    const open = accepted.get(req)
    accepted.delete(req)
    if (!open || res.status !== 200 || socket.destroyed) return refuse(socket, res)
    wss.handleUpgrade(req, socket, head, (ws: Tracked) => {
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
