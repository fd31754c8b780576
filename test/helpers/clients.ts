import WebSocket from 'ws'
import { readSse, type SseEvent } from './sse.ts'

export type { SseEvent }

export interface WsEventLike { id: number; seq: number; type: string; status: string; run_id: string; workflow_id: string; tags: string[]; data: any }

/** A real WebSocket subscriber that records every message, event and the close. */
export function openWs(url: string, headers: Record<string, string> = {}, protocols?: string[]) {
  const ws = new WebSocket(url, protocols, { headers })
  const messages: any[] = []
  const events: WsEventLike[] = []
  let closeInfo: { code: number; reason: string } | null = null
  let unexpected: { status: number; body: string } | null = null
  const opened = new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve())
    ws.once('unexpected-response', (_req, res) => {
      let body = ''
      res.on('data', (c) => (body += c))
      res.on('end', () => { unexpected = { status: res.statusCode ?? 0, body }; reject(Object.assign(new Error(`upgrade refused: ${res.statusCode}`), { status: res.statusCode, body })) })
    })
    ws.once('error', (err) => reject(err))
  })
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    ws.on('close', (code, reason) => { closeInfo = { code, reason: reason.toString() }; resolve(closeInfo) })
  })
  ws.on('message', (data) => {
    const msg = JSON.parse(data.toString())
    messages.push(msg)
    if (msg.type === 'event') events.push(msg.event)
    if (msg.type === 'batch') events.push(...msg.events)
  })
  opened.catch(() => {})
  return {
    ws, messages, events, opened, closed,
    get closeInfo() { return closeInfo },
    get unexpected() { return unexpected },
    send: (msg: unknown) => ws.send(JSON.stringify(msg)),
    close: () => ws.close(),
    /** Drop the connection without a close handshake (a network failure). */
    kill: () => ws.terminate(),
  }
}

/** A real SSE client over fetch: parses the stream as a browser's EventSource would. */
export function openSse(url: string, headers: Record<string, string> = {}) {
  const controller = new AbortController()
  const events: SseEvent[] = []
  let status = 0
  let ended = false
  const done = (async () => {
    const res = await fetch(url, { headers: { accept: 'text/event-stream', ...headers }, signal: controller.signal })
    status = res.status
    if (!res.ok || !res.body) { ended = true; return }
    await readSse(res.body, events)
    ended = true
  })()
  done.catch(() => { ended = true })
  return {
    events,
    get status() { return status },
    get ended() { return ended },
    done,
    close: () => controller.abort(),
  }
}
