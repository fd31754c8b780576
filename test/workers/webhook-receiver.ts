/**
 * A webhook receiver for the Workers tests, in Node (globalSetup) on 127.0.0.1: it records
 * every POST to /hooks/<name> and answers 200. Code inside workerd reads what arrived with
 * GET /__received/<name> (it cannot reach this process's memory).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'

export interface ReceivedHook { at: number; headers: Record<string, string>; body: string }

export async function startWebhookReceiver(): Promise<{ url: string; close(): Promise<void> }> {
  const received = new Map<string, ReceivedHook[]>()
  const sockets = new Set<Socket>()
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://receiver')
    const [, kind, name] = url.pathname.split('/')
    if (req.method === 'GET' && kind === '__received' && name) {
      res.writeHead(200, { 'content-type': 'application/json' })
      return res.end(JSON.stringify(received.get(name) ?? []))
    }
    if (req.method !== 'POST' || kind !== 'hooks' || !name) { res.writeHead(404); return res.end() }
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (c: string) => (body += c))
    req.on('end', () => {
      const headers: Record<string, string> = {}
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string') headers[k] = v
      const list = received.get(name) ?? []
      list.push({ at: Date.now(), headers, body })
      received.set(name, list)
      res.writeHead(200, { 'content-type': 'text/plain' })
      res.end('ok')
    })
  })
  server.on('connection', (s: Socket) => { sockets.add(s); s.on('close', () => sockets.delete(s)) })
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(0, '127.0.0.1', () => resolve()) })
  const addr = server.address()
  const port = typeof addr === 'object' && addr ? addr.port : 0
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => { for (const s of sockets) s.destroy(); server.close(() => resolve()) }),
  }
}
