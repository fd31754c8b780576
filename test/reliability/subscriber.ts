import WebSocket from 'ws'

export interface Ev { id: number; seq: number; run_id: string; type: string; status: string }

/**
 * A subscriber that resumes like a real client should: on any close other than 1000 (run
 * finished) or a 40xx refusal it reconnects with `after` = the last position it received.
 * Records every event it got (the "observed" side of the history check) and every close code.
 */
export function resilientSubscriber(opts: {
  /** URL without `after` (`ws://…/v1/runs/<id>/stream` or `ws://…/v1/stream`). */
  url: string
  key: string
  kind: 'run' | 'feed'
  after?: number
  /** Delay before reconnecting, ms (random in [0, reconnectMs)). */
  reconnectMs?: number
  /** Close codes that also mean "resume" even though they are 40xx (4008 slow consumer). */
}) {
  const received: Ev[] = []
  const closes: number[] = []
  let last = opts.after ?? 0
  let ws: WebSocket | null = null
  let stopped = false
  let connects = 0
  let finished = false
  let resolveFinished!: () => void
  const done = new Promise<void>((r) => (resolveFinished = r))
  const pos = (e: Ev) => (opts.kind === 'run' ? e.seq : e.id)

  const connect = () => {
    if (stopped) return
    connects++
    const sep = opts.url.includes('?') ? '&' : '?'
    const sock = new WebSocket(`${opts.url}${sep}after=${last}`, { headers: { authorization: `Bearer ${opts.key}` } })
    ws = sock
    sock.on('message', (data) => {
      const msg = JSON.parse(data.toString())
      const evs: Ev[] = msg.type === 'event' ? [msg.event] : msg.type === 'batch' ? msg.events : []
      for (const e of evs) {
        received.push(e)
        last = Math.max(last, pos(e))
      }
    })
    sock.on('error', () => {})
    sock.on('close', (code) => {
      closes.push(code)
      if (ws === sock) ws = null
      if (code === 1000 && opts.kind === 'run') { finished = true; resolveFinished(); return }
      if (code >= 4000 && code !== 4008) { finished = true; resolveFinished(); return }
      if (!stopped) setTimeout(connect, Math.random() * (opts.reconnectMs ?? 50))
    })
  }
  connect()
  return {
    received,
    closes,
    get last() { return last },
    get connects() { return connects },
    get connected() { return ws?.readyState === WebSocket.OPEN },
    get finished() { return finished },
    done,
    /** Cut the connection abruptly (no close handshake): a network failure. */
    cut() { if (ws && ws.readyState === WebSocket.OPEN) { ws.terminate(); return true } return false },
    stop() { stopped = true; ws?.terminate(); resolveFinished() },
  }
}

export interface CheckResult { expected: number; received: number; lost: number; duplicated: number; reordered: number }

/**
 * Jepsen-style check of one subscriber: `published` is the stored history (what was
 * published, in order) it should have seen; `received` what it got. Lost = published but
 * never received; duplicated = received more than once; reordered = received after an
 * event with a later position.
 */
export function checkHistory(published: Ev[], received: Ev[], pos: (e: Ev) => number): CheckResult {
  const seen = new Map<number, number>()
  let reordered = 0
  let max = -Infinity
  for (const e of received) {
    const p = pos(e)
    seen.set(p, (seen.get(p) ?? 0) + 1)
    if (p < max) reordered++
    max = Math.max(max, p)
  }
  let lost = 0
  for (const e of published) if (!seen.has(pos(e))) lost++
  let duplicated = 0
  for (const n of seen.values()) duplicated += n - 1
  return { expected: published.length, received: received.length, lost, duplicated, reordered }
}

export function sumChecks(results: CheckResult[]): CheckResult {
  return results.reduce((a, r) => ({ expected: a.expected + r.expected, received: a.received + r.received, lost: a.lost + r.lost, duplicated: a.duplicated + r.duplicated, reordered: a.reordered + r.reordered }), { expected: 0, received: 0, lost: 0, duplicated: 0, reordered: 0 })
}
