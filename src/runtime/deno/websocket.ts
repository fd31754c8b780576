/// <reference lib="deno.ns" />
import { defineWebSocketHelper, WSContext, type UpgradeWebSocket } from 'hono/ws'
import { selectSubprotocol } from '../../core/protocol.ts'

/**
 * The request as Deno.upgradeWebSocket must see it. Deno looks the selected protocol up in the
 * offer split on ", " exactly, so an offer joined with "," (Node's `ws`, other non-browser
 * clients) made any selection throw: a view of the request with the offer re-joined by ", ".
 */
function negotiable(req: Request): Request {
  const offered = req.headers.get('sec-websocket-protocol')
  if (!offered) return req
  const normalized = offered.split(',').map((s) => s.trim()).filter(Boolean).join(', ')
  if (normalized === offered) return req
  const headers = new Headers(req.headers)
  headers.set('sec-websocket-protocol', normalized)
  return new Proxy(req, {
    get(target, prop) {
      if (prop === 'headers') return headers
      const value = Reflect.get(target, prop, target)
      return typeof value === 'function' ? value.bind(target) : value
    },
  })
}

/**
 * hono/deno's upgradeWebSocket (deprecated there) with runrelay's subprotocol negotiation:
 * the 101 selects runrelay.v1 when the client offers it. Browsers and Node's built-in WebSocket
 * drop a connection whose offered subprotocols are not answered with one of them.
 */
export const upgradeWebSocket: UpgradeWebSocket<WebSocket, Deno.UpgradeWebSocketOptions> = defineWebSocketHelper<WebSocket, Deno.UpgradeWebSocketOptions>(async (c, events, options) => {
  if (c.req.header('upgrade')?.toLowerCase() !== 'websocket') return
  const protocol = selectSubprotocol(c.req.header('sec-websocket-protocol'))
  const { response, socket } = Deno.upgradeWebSocket(negotiable(c.req.raw), { ...(protocol ? { protocol } : {}), ...options })
  const ctx = new WSContext<WebSocket>({
    close: (code, reason) => socket.close(code, reason),
    get protocol() { return socket.protocol },
    raw: socket,
    get readyState() { return socket.readyState as 0 | 1 | 2 | 3 },
    url: socket.url ? new URL(socket.url) : null,
    send: (source) => socket.send(source),
  })
  socket.onopen = (evt) => events.onOpen?.(evt, ctx)
  socket.onmessage = (evt) => events.onMessage?.(evt, ctx)
  socket.onclose = (evt) => events.onClose?.(evt, ctx)
  socket.onerror = (evt) => events.onError?.(evt, ctx)
  return response
})
