/**
 * The load side of a bench case, in its own process: WebSocket subscribers, direct pollers
 * of the fake upstream and API trigger load. It never shares the server's CPU accounting.
 */
import { Agent as HttpAgent, request } from 'node:http'
import WebSocket from 'ws'
import { nowMs, percentile, serveAgent, sleep } from './rpc.ts'

interface Sub {
  ws: WebSocket; events: number; frames: number
  /** Fan-out checks (latency mode): last seq seen, seqs out of order or missing, caught_up time, close code. */
  last?: number; misordered?: number; caughtUpAt?: number; closeCode?: number
}
let subs: Sub[] = []
let received = 0
/** Receive times by "run:seq" (latency mode), or latencies computed from bench_t in the frame. */
let recv: Array<[string, number]> = []
let selfStamped: number[] = []
/** Received minus the event's own `at` (its persist time, millisecond resolution). */
let fromAt: number[] = []
let mode: 'count' | 'latency' = 'count'

function onMessage(s: Sub, data: WebSocket.RawData) {
  const t = nowMs()
  s.frames++
  const text = data.toString()
  if (mode === 'count') {
    // Counting only: the frame type and, for batches, the number of events.
    if (text.startsWith('{"type":"event"')) { s.events++; received++ }
    else if (text.startsWith('{"type":"batch"')) { const n = (JSON.parse(text).events as unknown[]).length; s.events += n; received += n }
    return
  }
  const msg = JSON.parse(text)
  if (msg.type === 'caught_up') s.caughtUpAt = t
  const evs = msg.type === 'event' ? [msg.event] : msg.type === 'batch' ? msg.events : []
  for (const e of evs) {
    // A run stream's seqs go 1, 2, 3 … (after=0): anything else is a gap, a duplicate or reordering.
    if (e.seq !== (s.last ?? 0) + 1) s.misordered = (s.misordered ?? 0) + 1
    s.last = e.seq
    s.events++
    received++
    recv.push([`${e.run_id}:${e.seq}`, t])
    if (typeof e.data?.bench_t === 'number') selfStamped.push(t - e.data.bench_t)
    if (typeof e.at === 'string') fromAt.push(t - Date.parse(e.at))
  }
}

serveAgent({
  /** Open `urls.length` subscribers (`concurrency` handshakes at a time); resolves once all are open. */
  async connect({ urls, headers = {}, concurrency = 100, latency = false }: { urls: string[]; headers?: Record<string, string>; concurrency?: number; latency?: boolean }) {
    mode = latency ? 'latency' : 'count'
    let i = 0
    let failed = 0
    const started = nowMs()
    await Promise.all(Array.from({ length: Math.min(concurrency, urls.length) }, async () => {
      while (i < urls.length) {
        const url = urls[i++]!
        const ws = new WebSocket(url, { headers, perMessageDeflate: false })
        const s: Sub = { ws, events: 0, frames: 0 }
        ws.on('message', (d) => onMessage(s, d))
        ws.on('close', (code) => { s.closeCode = code })
        ws.on('error', () => {})
        const ok = await new Promise<boolean>((resolve) => {
          const t = setTimeout(() => resolve(false), 20_000)
          ws.once('open', () => { clearTimeout(t); resolve(true) })
          ws.once('close', () => { clearTimeout(t); resolve(false) })
        })
        if (ok) subs.push(s)
        else failed++
      }
    }))
    return { open: subs.length, failed, ms: nowMs() - started }
  },
  reset() { received = 0; recv = []; selfStamped = []; fromAt = []; for (const s of subs) { s.events = 0; s.frames = 0 } return null },
  /** Wait until `total` events have arrived across subscribers (or `timeoutMs`). */
  async waitFor({ total, timeoutMs }: { total: number; timeoutMs: number }) {
    const end = Date.now() + timeoutMs
    while (received < total && Date.now() < end) await sleep(20)
    return { received, at: nowMs(), stillOpen: subs.filter((s) => s.ws.readyState === WebSocket.OPEN).length }
  },
  received() { return received },
  /** Latency percentiles: from the server's publish times (runrelay) or the stamp in each frame (bare ws). */
  latency({ publishedAt }: { publishedAt?: Record<string, number> }) {
    const lat = publishedAt ? recv.flatMap(([k, t]) => (publishedAt[k] !== undefined ? [t - publishedAt[k]!] : [])) : selfStamped.slice()
    const fromStamp = selfStamped.slice().sort((a, b) => a - b)
    lat.sort((a, b) => a - b)
    const at = fromAt.slice().sort((a, b) => a - b)
    let firstAt = Infinity, lastAt = -Infinity
    for (const [, t] of recv) { if (t < firstAt) firstAt = t; if (t > lastAt) lastAt = t }
    return {
      firstAt, lastAt,
      atP50: percentile(at, 50), atP99: percentile(at, 99),
      n: lat.length, p50: percentile(lat, 50), p99: percentile(lat, 99), max: lat[lat.length - 1],
      stampP50: percentile(fromStamp, 50), stampP99: percentile(fromStamp, 99),
    }
  },
  perSubscriber() { return subs.map((s) => s.events) },
  /** Run-stream checks over all subscribers: caught up (and when, from `since`), seqs in order without gaps, close codes. */
  fanoutCheck({ since }: { since: number }) {
    const caught = subs.filter((s) => s.caughtUpAt !== undefined).map((s) => s.caughtUpAt! - since).sort((a, b) => a - b)
    const closes: Record<string, number> = {}
    for (const s of subs) if (s.closeCode !== undefined) closes[s.closeCode] = (closes[s.closeCode] ?? 0) + 1
    return {
      subs: subs.length, caughtUp: caught.length, caughtUpP50Ms: percentile(caught, 50), caughtUpMaxMs: caught[caught.length - 1] ?? null,
      misordered: subs.reduce((n, s) => n + (s.misordered ?? 0), 0), lastSeqs: [...new Set(subs.map((s) => s.last ?? 0))], closes,
    }
  },
  now() { return nowMs() },
  async closeAll() {
    for (const s of subs) s.ws.terminate()
    subs = []
    await sleep(200)
    return null
  },

  /** N clients each polling `url` every `intervalMs` for `durationMs`; returns requests made. */
  async pollDirect({ url, n, intervalMs, durationMs }: { url: string; n: number; intervalMs: number; durationMs: number }) {
    const agent = new HttpAgent({ keepAlive: true, maxSockets: 2_000 })
    let requests = 0
    let errors = 0
    const end = nowMs() + durationMs
    const get = () => new Promise<void>((resolve) => {
      const req = request(url, { agent }, (res) => { res.resume(); res.on('end', () => resolve()) })
      req.on('error', () => { errors++; resolve() })
      req.setTimeout(10_000, () => req.destroy())
      req.end()
    })
    await Promise.all(Array.from({ length: n }, async (_, k) => {
      await sleep((k / n) * intervalMs) // spread the clients over one interval
      while (nowMs() < end) {
        const next = nowMs() + intervalMs
        await get()
        requests++
        const wait = next - nowMs()
        if (wait > 0) await sleep(Math.min(wait, Math.max(0, end - nowMs())))
      }
    }))
    agent.destroy()
    return { requests, errors }
  },

  /** Trigger runs through the API with `concurrency` requests in flight for `durationMs`. */
  async triggerLoad({ url, key, workflowId, concurrency, durationMs, max }: { url: string; key: string; workflowId: string; concurrency: number; durationMs: number; max: number }) {
    const agent = new HttpAgent({ keepAlive: true, maxSockets: concurrency })
    let ok = 0
    let failed = 0
    let started = 0
    const body = JSON.stringify({ variables: { n: 1 } })
    const t0 = nowMs()
    const end = t0 + durationMs
    const post = () => new Promise<number>((resolve) => {
      const req = request(`${url}/v1/workflows/${workflowId}/runs`, {
        method: 'POST', agent, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode ?? 0)) })
      req.on('error', () => resolve(0))
      req.setTimeout(30_000, () => req.destroy())
      req.end(body)
    })
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (nowMs() < end && started < max) {
        started++
        if ((await post()) === 202) ok++
        else failed++
      }
    }))
    agent.destroy()
    return { ok, failed, ms: nowMs() - t0 }
  },
  async exit() { for (const s of subs) s.ws.terminate() },
})
