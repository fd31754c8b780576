/**
 * The load side of `npm run bench -- workers-fanout`, in its own process (the case starts two,
 * each holding half the sockets, so one event loop is not the bottleneck). Every socket
 * subscribes to one run's stream with `after=0` and this agent checks, per socket, that it
 * receives each seq exactly once and in order (lost, duplicated, reordered), including across a
 * disconnect and a resume with `after=<last seq>`. It records each arrival's time so the case can
 * compute delivery latency (event `at` → received) and when every socket had a given event.
 */
import WebSocket from 'ws'
import { nowMs, serveAgent, sleep } from './rpc.ts'

/** Highest seq tracked per socket (the run's events in a bench run stay far below it). */
const MAX_SEQ = 4096

interface Sub {
  url: string
  ws: WebSocket
  /** Arrival time of each seq (0: not received). */
  at: Float64Array
  /** Highest seq received, arrivals of an already received seq, arrivals below `top` not received before. */
  top: number; duplicated: number; reordered: number
  caughtUpAt?: number
  /** Close code of the current connection. */
  closeCode?: number
  /** Times this socket was dropped and resumed. */
  resumes: number
}

let subs: Sub[] = []
/** Each event's own `at` (its persist time), by seq. */
const eventAt = new Map<number, number>()

function onMessage(s: Sub, data: WebSocket.RawData) {
  const t = nowMs()
  const msg = JSON.parse(data.toString())
  if (msg.type === 'caught_up') { s.caughtUpAt ??= t; return }
  const evs = msg.type === 'event' ? [msg.event] : msg.type === 'batch' ? msg.events : []
  for (const e of evs) {
    const seq = e.seq as number
    if (seq < 1 || seq >= MAX_SEQ) { s.reordered++; continue }
    if (s.at[seq]) { s.duplicated++; continue }
    if (seq < s.top) s.reordered++
    s.at[seq] = t
    if (seq > s.top) s.top = seq
    if (!eventAt.has(seq) && typeof e.at === 'string') eventAt.set(seq, Date.parse(e.at))
  }
}

/** Open one socket on `s.url` (bounded wait); true once open. */
function open(s: Sub, headers: Record<string, string>): Promise<boolean> {
  const ws = new WebSocket(s.url, { headers, perMessageDeflate: false })
  s.ws = ws
  s.closeCode = undefined
  ws.on('message', (d) => onMessage(s, d))
  ws.on('close', (code) => { if (s.ws === ws) s.closeCode = code })
  ws.on('error', () => {})
  return new Promise<boolean>((resolve) => {
    const t = setTimeout(() => resolve(false), 30_000)
    ws.once('open', () => { clearTimeout(t); resolve(true) })
    ws.once('close', () => { clearTimeout(t); resolve(false) })
  })
}

/** Run `fn` over `items` with at most `concurrency` in flight. */
async function pool<T>(items: T[], concurrency: number, fn: (item: T) => Promise<void>) {
  let i = 0
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, async () => { while (i < items.length) await fn(items[i++]!) }))
}

/** The highest seq before which this socket has every event (its resume position). */
function contiguous(s: Sub): number {
  let k = 0
  while (k + 1 < MAX_SEQ && s.at[k + 1]) k++
  return k
}

serveAgent({
  now() { return nowMs() },

  /** Open `urls.length` sockets, `concurrency` handshakes at a time. */
  async connect({ urls, headers = {}, concurrency = 100 }: { urls: string[]; headers?: Record<string, string>; concurrency?: number }) {
    let failed = 0
    const started = nowMs()
    const fresh: Sub[] = urls.map((url) => ({ url, ws: undefined as unknown as WebSocket, at: new Float64Array(MAX_SEQ), top: 0, duplicated: 0, reordered: 0, resumes: 0 }))
    await pool(fresh, concurrency, async (s) => { if (await open(s, headers)) subs.push(s); else failed++ })
    return { open: subs.length, failed, ms: nowMs() - started }
  },

  /** Sockets with caught_up, and how long after `since` each got it. */
  caughtUp({ since }: { since: number }) {
    return { n: subs.filter((s) => s.caughtUpAt !== undefined).length, ms: subs.flatMap((s) => (s.caughtUpAt === undefined ? [] : [s.caughtUpAt - since])) }
  },

  /** How many sockets have received `seq`. */
  have({ seq }: { seq: number }) { return subs.filter((s) => s.at[seq]! > 0).length },

  /**
   * Drop every `every`-th socket abruptly (terminate: no close frame, as a network cut), then
   * after `pauseMs` reopen it with `after=` its last contiguous seq, as a reconnecting client does.
   */
  async dropAndResume({ every, pauseMs, headers = {}, concurrency = 50 }: { every: number; pauseMs: number; headers?: Record<string, string>; concurrency?: number }) {
    const sample = subs.filter((_, i) => i % every === 0)
    for (const s of sample) s.ws.terminate()
    await sleep(pauseMs)
    const positions: number[] = []
    let failed = 0
    await pool(sample, concurrency, async (s) => {
      const after = contiguous(s)
      positions.push(after)
      const u = new URL(s.url)
      u.searchParams.set('after', String(after))
      s.url = u.toString()
      s.resumes++
      if (!(await open(s, headers))) failed++
    })
    return { dropped: sample.length, failed, positions: [Math.min(...positions), Math.max(...positions)] }
  },

  /**
   * Per-socket checks over seqs 1 … `last`: lost (never received), duplicated, reordered; close
   * codes; and every arrival of a seq in `liveFrom` … `last` minus the event's `at` (latency),
   * with, per seq, the time after its `at` by which every socket had it.
   */
  report({ liveFrom, last }: { liveFrom: number; last: number }) {
    let lost = 0, duplicated = 0, reordered = 0, socketsWithLoss = 0, resumed = 0, resumedClean = 0
    const closes: Record<string, number> = {}
    const latencies: number[] = []
    const allBy: Record<number, number> = {}
    for (const s of subs) {
      let missing = 0
      for (let seq = 1; seq <= last; seq++) if (!s.at[seq]) missing++
      lost += missing
      if (missing) socketsWithLoss++
      duplicated += s.duplicated
      reordered += s.reordered
      if (s.resumes) { resumed++; if (!missing && !s.duplicated && !s.reordered) resumedClean++ }
      const code = String(s.closeCode ?? 'open')
      closes[code] = (closes[code] ?? 0) + 1
    }
    for (let seq = liveFrom; seq <= last; seq++) {
      const at = eventAt.get(seq)
      if (at === undefined) continue
      let latest = 0
      for (const s of subs) {
        const t = s.at[seq]!
        if (!t) continue
        latencies.push(t - at)
        if (t > latest) latest = t
      }
      if (latest) allBy[seq] = latest - at
    }
    return { sockets: subs.length, lost, socketsWithLoss, duplicated, reordered, resumed, resumedClean, closes, latencies, allBy }
  },

  async exit() { for (const s of subs) s.ws?.terminate(); subs = [] },
})
