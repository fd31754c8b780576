import type { Context } from 'hono'
import { selectSubprotocol } from '../../core/protocol.ts'
import type { SocketHandler, WebSocketAcceptor } from '../local/streams.ts'
import { BunTopics, type TopicSocket, type TopicStreamSocket } from './topics.ts'

/** The part of Bun's ServerWebSocket runrelay uses (typed here so the Node type check needs no Bun types). */
export interface BunSocket extends TopicSocket {
  send(data: string): number
  close(code?: number, reason?: string): void
  terminate(): void
  getBufferedAmount(): number
  data: SocketData
}

/** The part of Bun's Server the acceptor uses. */
export interface BunUpgrader {
  upgrade(req: Request, options: { data: SocketData; headers?: HeadersInit }): boolean
}

/** Per-socket data: how to open its stream session, then the session itself. */
export interface SocketData {
  open: (socket: TopicStreamSocket) => SocketHandler
  handler?: SocketHandler
}

/** What the app's fetch gets as its env on Bun (the second argument of Bun.serve's fetch). */
export interface BunEnv { server: BunUpgrader }

/** Largest client message accepted; client messages (ping, refresh_token) are a few hundred bytes. */
export const MAX_CLIENT_MESSAGE_BYTES = 64 * 1024

/** A Bun ServerWebSocket as the StreamSocket the local streams write to. */
function streamSocket(ws: BunSocket): TopicStreamSocket {
  return {
    ws,
    send: (data) => { ws.send(data) },
    close: (code, reason) => ws.close(code, reason),
    get bufferedAmount() { return ws.getBufferedAmount() },
    terminate: () => ws.terminate(),
  }
}

/**
 * WebSockets for runrelay on Bun. As on Node, an upgrade request goes through the Hono app
 * (authentication, validation, the run lookup); a stream route that accepts it upgrades the
 * connection through Bun's server (which then ignores the app's placeholder answer). The
 * runrelay.v1 subprotocol is selected as on the other runtimes. Caught-up subscribers move to
 * native topics (topics.ts); `maxBufferedBytes` is RUNRELAY_WS_MAX_BUFFERED_BYTES.
 */
export function createBunWebSockets(opts: { maxBufferedBytes: number }) {
  const topics = new BunTopics()
  const acceptor: WebSocketAcceptor = {
    topics,
    accept(c: Context, open) {
      const server = (c.env as BunEnv | undefined)?.server
      if (!server || c.req.header('upgrade')?.toLowerCase() !== 'websocket') return undefined
      const protocol = selectSubprotocol(c.req.header('sec-websocket-protocol'))
      const upgraded = server.upgrade(c.req.raw, { data: { open }, ...(protocol ? { headers: { 'sec-websocket-protocol': protocol } } : {}) })
      return upgraded ? new Response(null) : undefined
    },
  }
  // Open sockets, so a clean shutdown can wait for their 1012 close handshakes.
  const open = new Set<BunSocket>()
  /** Bun.serve's `websocket` handlers. */
  const websocket = {
    maxPayloadLength: MAX_CLIENT_MESSAGE_BYTES,
    // Heartbeats (every RUNRELAY_HEARTBEAT_MS) keep a live socket busy.
    idleTimeout: 0,
    // A frame sent from JavaScript meets the streams' slow-consumer check first (close 4008). A
    // frame published to a topic meets only Bun's: past the limit µWebSockets would drop it for
    // that socket, so it closes the socket instead (the client sees 1006 and resumes with after).
    backpressureLimit: opts.maxBufferedBytes,
    closeOnBackpressureLimit: true,
    open(ws: BunSocket) {
      open.add(ws)
      ws.data.handler = ws.data.open(streamSocket(ws))
    },
    message(ws: BunSocket, message: string | Uint8Array) { ws.data.handler?.message(typeof message === 'string' ? message : new TextDecoder().decode(message)) },
    close(ws: BunSocket) {
      open.delete(ws)
      const h = ws.data.handler
      ws.data.handler = undefined
      h?.closed()
    },
  }
  return {
    acceptor, websocket, topics,
    /** Resolves once every socket has closed, or after timeoutMs. */
    async drained(timeoutMs: number): Promise<void> {
      const deadline = Date.now() + timeoutMs
      while (open.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    },
  }
}
