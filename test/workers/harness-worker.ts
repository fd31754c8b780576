/**
 * Test-only Worker entry for the workerd harness (NOT the runrelay worker).
 *
 * It exists to prove the Durable Object + alarm + WebSocket + outbound-fetch
 * plumbing of @cloudflare/vitest-plugin works on this machine, so the
 * real runrelay worker tests can rely on it:
 *   - `HarnessObject` counts alarms in its storage and echoes WebSocket
 *     messages using the hibernation API (ctx.acceptWebSocket);
 *   - `queryLibsql()` runs inside the object and reaches the libSQL test
 *     server through @libsql/client/web (the same path runrelay's DOs use);
 *   - the default fetch handler routes /do/<name>/... to the object.
 */
import { DurableObject } from 'cloudflare:workers'
import { createClient } from '@libsql/client/web'

export interface Env {
  HARNESS: DurableObjectNamespace<HarnessObject>
  LIBSQL_URL: string
  LIBSQL_AUTH_TOKEN: string
}

export class HarnessObject extends DurableObject<Env> {
  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url)
    if (request.headers.get('Upgrade')?.toLowerCase() === 'websocket') {
      const pair = new WebSocketPair()
      const [client, server] = [pair[0], pair[1]]
      this.ctx.acceptWebSocket(server, ['harness'])
      return new Response(null, { status: 101, webSocket: client })
    }
    if (url.pathname.endsWith('/alarms')) {
      return Response.json({ alarms: (await this.ctx.storage.get<number>('alarms')) ?? 0 })
    }
    return new Response('not found', { status: 404 })
  }

  async scheduleAlarm(inMs: number): Promise<void> {
    await this.ctx.storage.setAlarm(Date.now() + inMs)
  }

  async alarm(): Promise<void> {
    const n = ((await this.ctx.storage.get<number>('alarms')) ?? 0) + 1
    await this.ctx.storage.put('alarms', n)
    for (const ws of this.ctx.getWebSockets('harness')) ws.send(JSON.stringify({ alarm: n }))
  }

  async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    const text = typeof message === 'string' ? message : new TextDecoder().decode(message)
    if (text === 'ping') ws.send('pong')
    else if (text === 'count') ws.send(String(this.ctx.getWebSockets().length))
    else ws.send(`echo:${text}`)
  }

  async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    ws.close(code, reason)
  }

  /** Runs a query against the libSQL test server from inside the Durable Object. */
  async queryLibsql(sql: string): Promise<unknown[][]> {
    const client = createClient({ url: this.env.LIBSQL_URL, authToken: this.env.LIBSQL_AUTH_TOKEN })
    try {
      const rs = await client.execute(sql)
      return rs.rows.map((r) => Array.from(r))
    } finally {
      client.close()
    }
  }
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const m = /^\/do\/([^/]+)(\/.*)?$/.exec(new URL(request.url).pathname)
    if (!m) return new Response('harness worker', { status: 200 })
    return env.HARNESS.get(env.HARNESS.idFromName(m[1]!)).fetch(request)
  },
} satisfies ExportedHandler<Env>
