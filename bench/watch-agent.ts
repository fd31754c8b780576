/**
 * The `watch` case's helpers, each in its own process (BENCH_AGENT says which role it plays):
 *
 * - `upstream`: a keep-alive fake upstream on loopback whose jobs report new progress on every
 *   poll (so every poll of runrelay commits and publishes one event). It measures what the
 *   watcher achieves from outside: polls per second, and each job's poll lag (the gap between
 *   two polls of one job minus the interval asked).
 * - `raw`: the baseline, the raw work of one poll: a keep-alive GET to the same fake and one
 *   INSERT of a ~300-byte row into a libSQL file in WAL, committed one transaction per row, or
 *   one transaction per event-loop turn (group commit). One timer per run, as runrelay had.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'libsql'
import { Agent } from 'undici'
import { serveAgent } from './rpc.ts'

let cpuMark = process.cpuUsage()
const common = {
  cpuMark() { cpuMark = process.cpuUsage(); return null },
  cpuSince() { const d = process.cpuUsage(cpuMark); return (d.user + d.system) / 1000 },
  mem() { (globalThis as { gc?: () => void }).gc?.(); return process.memoryUsage().rss },
}

/** Lag samples of a window and the polls counted in it. */
class Window {
  polls = 0
  lags: number[] = []
  startedAt = performance.now()
  reset() { this.polls = 0; this.lags = []; this.startedAt = performance.now() }
  summary() {
    const s = this.lags.sort((a, b) => a - b)
    const q = (p: number) => (s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))]! : NaN)
    const seconds = (performance.now() - this.startedAt) / 1000
    // No sample (no job polled twice in the window) is reported as null (JSON), shown as "null".
    return { polls: this.polls, seconds, perSec: this.polls / seconds, lagP50: q(0.5), lagP99: q(0.99), lagMax: s.at(-1) ?? NaN, samples: s.length }
  }
}

// ----------------------------------------------------------------------------------------
// upstream
interface Job { polls: number; last: number; done: boolean }
function upstreamRole() {
  const jobs = new Map<string, Job>()
  const sockets = new Set<Socket>()
  const win = new Window()
  let intervalMs = 1000, next = 1, triggers = 0
  const send = (res: ServerResponse, status: number, body: string) => {
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
    res.end(body)
  }
  const readBody = (req: IncomingMessage) => new Promise<string>((resolve) => { let d = ''; req.on('data', (c) => (d += c)); req.on('end', () => resolve(d)) })
  const server = createServer(async (req, res) => {
    const url = req.url ?? '/'
    if (req.method === 'POST' && url.startsWith('/jobs')) {
      const body = await readBody(req)
      const id = `job-${next++}`
      triggers++
      // {"script":"done"}: a run that completes on its first poll (the trigger-throughput runs).
      jobs.set(id, { polls: 0, last: 0, done: body.includes('"done"') })
      return send(res, 201, `{"id":"${id}","status":"pending"}`)
    }
    const id = url.slice(6)
    const job = jobs.get(id)
    if (!job || req.method !== 'GET') return send(res, 404, '{"error":"no such job"}')
    const now = performance.now()
    if (job.last) win.lags.push(now - job.last - intervalMs)
    job.last = now
    job.polls++
    win.polls++
    if (job.done) { jobs.delete(id); return send(res, 200, `{"id":"${id}","status":"completed","progress":1,"result":{"ok":true}}`) }
    // New progress on every poll: each poll of a watcher is one event to persist and publish.
    send(res, 200, `{"id":"${id}","status":"running","progress":${(job.polls % 1000) / 1000 + 0.0001},"message":"step ${job.polls} of the bench job, a message of a realistic length"}`)
  })
  server.keepAliveTimeout = 60_000
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)) })
  serveAgent({
    ...common,
    async start() {
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
      return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }
    },
    /** Start a measuring window; polls of the last window are forgotten. */
    mark({ intervalMs: i }: { intervalMs: number }) { intervalMs = i; win.reset(); return null },
    window() { return { ...win.summary(), jobs: jobs.size, triggers, sockets: sockets.size } },
    /** Forget every job (the runs of the last scenario are gone with their process). */
    clear() { jobs.clear(); for (const s of sockets) s.destroy(); return null },
  })
}

// ----------------------------------------------------------------------------------------
// raw baseline
function rawRole() {
  let stopped = true
  let timers: NodeJS.Timeout[] = []
  let db: InstanceType<typeof Database> | undefined
  let dir: string | undefined
  serveAgent({
    ...common,
    /** `runs` pollers, each every `intervalMs`: GET, then INSERT of a ~300-byte row, per row or per loop turn. */
    async start({ url, runs, intervalMs, mode }: { url: string; runs: number; intervalMs: number; mode: 'row' | 'group' }) {
      dir = mkdtempSync(join(process.env.BENCH_WATCH_DIR ?? tmpdir(), 'runrelay-bench-raw-'))
      db = new Database(join(dir, 'raw.db'), { timeout: 5000 })
      db.exec('PRAGMA journal_mode = WAL')
      db.exec('CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, seq INTEGER NOT NULL, type TEXT NOT NULL, data TEXT NOT NULL, at INTEGER NOT NULL)')
      const insert = db.prepare('INSERT INTO events (run_id, seq, type, data, at) VALUES (?, ?, ?, ?, ?)')
      const begin = db.prepare('BEGIN IMMEDIATE'), commit = db.prepare('COMMIT')
      let queue: unknown[][] = []
      let flushQueued = false
      const flush = () => {
        flushQueued = false
        const rows = queue
        queue = []
        begin.run()
        for (const r of rows) insert.run(r)
        commit.run()
      }
      // Triggered upstream jobs (the trigger itself is not part of the per-poll figure).
      const ids: string[] = []
      for (let i = 0; i < runs; i += 100) {
        ids.push(...await Promise.all(Array.from({ length: Math.min(100, runs - i) }, async () => ((await (await fetch(`${url}/jobs`, { method: 'POST', body: '{}' })).json()) as { id: string }).id)))
      }
      stopped = false
      const agent = new Agent(), origin = new URL(url).origin
      ids.forEach((id, i) => {
        let seq = 0
        const poll = async () => {
          if (stopped) return
          const started = Date.now()
          try {
            // The GET as runrelay's Node transport sends it (undici's request on a keep-alive agent, pinned-transport.ts).
            const body = await (await agent.request({ origin, path: `/jobs/${id}`, method: 'GET', headers: { accept: 'application/json' } })).body.json() as { progress: number; message: string }
            // ~300 bytes: the shape of a run.progress event row.
            const row = [id, ++seq, 'run.progress', JSON.stringify({ progress: body.progress, message: body.message, status: 'running', tags: ['bench'], workflow: 'wf_0123456789abcdef' }), started]
            if (mode === 'row') { begin.run(); insert.run(row); commit.run() } else { queue.push(row); if (!flushQueued) { flushQueued = true; setImmediate(flush) } }
          } catch { /* counted by the upstream as a missing poll */ }
          if (!stopped) timers[i] = setTimeout(poll, Math.max(0, started + intervalMs - Date.now()))
        }
        // Spread the first polls over one interval, as runrelay's runs are by their triggers.
        timers[i] = setTimeout(poll, (i / runs) * intervalMs)
      })
      return { runs: ids.length }
    },
    stop() {
      stopped = true
      for (const t of timers) clearTimeout(t)
      timers = []
      db?.close(); db = undefined
      if (dir) rmSync(dir, { recursive: true, force: true })
      return null
    },
  })
}

if (process.env.BENCH_AGENT?.startsWith('watch-upstream')) upstreamRole()
else rawRole()
