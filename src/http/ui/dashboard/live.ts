import { session } from './api.ts'
import type { RunEvent } from './api.ts'

export type LiveState = 'connecting' | 'live' | 'retrying' | 'ended' | 'refused'

/**
 * A WebSocket that reconnects (full-jitter backoff) and resumes after the last position it
 * delivered, so no event is missed or repeated across drops. The run stream closes with 1000
 * after the run's terminal event: that is "ended", not offline.
 */
export function live(path: string, opts: { after?: number; position: (e: RunEvent) => number; onEvent: (e: RunEvent) => void; onState: (s: LiveState) => void }): () => void {
  let pos = opts.after
  let attempt = 0
  let ws: WebSocket | null = null
  let closed = false
  let watchdog: ReturnType<typeof setTimeout> | undefined
  let heartbeatMs = 15_000
  const url = () => {
    const sep = path.includes('?') ? '&' : '?'
    return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${path}${pos !== undefined ? `${sep}after=${pos}` : ''}`
  }
  // Heartbeats come every heartbeatMs: silence for 2.5 of them means the connection is dead.
  const arm = () => {
    clearTimeout(watchdog)
    watchdog = setTimeout(() => { const w = ws; ws = null; if (w) { w.onclose = null; try { w.close() } catch { /* gone */ } lost(1006) } }, heartbeatMs * 2.5)
  }
  const lost = (code: number) => {
    clearTimeout(watchdog)
    if (closed) return
    if (code === 1000) return opts.onState('ended')
    if (code === 4001 || code === 4003 || code === 4004) return opts.onState('refused')
    opts.onState('retrying')
    setTimeout(connect, Math.random() * Math.min(15_000, 400 * 2 ** attempt++))
  }
  const connect = () => {
    if (closed) return
    opts.onState('connecting')
    const me = new WebSocket(url(), ['runrelay.v1', `runrelay.token.${session.credential}`])
    ws = me
    arm()
    me.onmessage = (m) => {
      if (ws !== me) return
      arm()
      let msg: any
      try { msg = JSON.parse(String(m.data)) } catch { return }
      if (msg.type === 'hello') { attempt = 0; heartbeatMs = msg.heartbeatMs || heartbeatMs; if (pos === undefined) pos = msg.after; opts.onState('live') }
      const events: RunEvent[] = msg.type === 'event' ? [msg.event] : msg.type === 'batch' ? msg.events : []
      for (const e of events) {
        const p = opts.position(e)
        if (pos !== undefined && p <= pos) continue
        pos = p
        opts.onEvent(e)
      }
    }
    me.onclose = (e) => { if (ws === me) { ws = null; lost(e.code) } }
  }
  connect()
  return () => { closed = true; clearTimeout(watchdog); if (ws) { ws.onclose = null; ws.close() } ws = null }
}
