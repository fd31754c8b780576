/**
 * The server side of a bench case, in its own process so its CPU (process.cpuUsage) and RSS
 * are the server's alone. It runs either runrelay (startNode, the production entry) or a
 * bare `ws` server, plus bench-only drivers that append events through runrelay's own
 * ledger (persist, then publish) at a controlled rate.
 */
import { createServer, type Server } from 'node:http'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomUUID } from 'node:crypto'
import { WebSocketServer, type WebSocket } from 'ws'
import { startNode } from '../src/runtime/node/main.ts'
import type { LocalLedger } from '../src/runtime/local/ledger.ts'
import type { RunRow } from '../src/db/store.ts'
import { events as eventsTable, runs as runsTable } from '../src/db/schema.ts'
import type { RunEvent } from '../src/core/domain.ts'
import { genericWorkflowConfig, startGenericUpstream, type GenericUpstream } from '../test/fakes/generic-upstream.ts'
import { nowMs, serveAgent, sleep } from './rpc.ts'

const ROOT_KEY = 'rr_bench_root_key_0123456789abcdef'
/** Bun, when this agent was started on it (bench/rpc.ts startAgent(…, 'bun')). */
const Bun = (globalThis as { Bun?: { serve(o: unknown): { port: number; publish(topic: string, data: string): number; stop(force?: boolean): void }; gc(force: boolean): void } }).Bun
type Started = Awaited<ReturnType<typeof startNode>>

let node: Started | undefined
let dataDir: string | undefined
let key = ''
let bare: { server: Server; wss: WebSocketServer; clients: Set<WebSocket> } | undefined
let bareBun: { publish(topic: string, data: string): number } | undefined
let upstream: GenericUpstream | undefined
const runsById = new Map<string, RunRow>()
/** When each event left the store for the hub (persisted → publish), by run and seq. */
const publishedAt = new Map<string, number>()
let recordPublish = false
let cpuMark = process.cpuUsage()
/** BENCH_CPU_PROF: the measured windows (performance.now()), printed at exit as ms before it, to cut them out of the profile. */
const profWindows: Array<[number, number]> = []
if (process.env.BENCH_CPU_PROF) process.on('exit', () => { const end = performance.now(); console.error(`cpu-prof windows (ms before exit): ${JSON.stringify(profWindows.map(([a, b]) => [end - a, end - b]))}`) })

const ledger = () => (node!.runtime.host as unknown as { ledger: LocalLedger }).ledger

async function api(method: string, path: string, body?: unknown, k = key) {
  const res = await fetch(node!.url + path, {
    method, headers: { authorization: `Bearer ${k}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  const json: any = await res.json().catch(() => null)
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`)
  return json
}

function gc() { for (let i = 0; i < 3; i++) { (globalThis as { gc?: () => void }).gc?.(); Bun?.gc(true) } }

/** Run `fn` over `items` with at most `limit` in flight. */
async function pool<T>(items: T[], limit: number, fn: (t: T) => Promise<unknown>) {
  let i = 0
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => { while (i < items.length) await fn(items[i++]!) }))
}

/** Append one event per call to a run through the production ledger; a run's commits never overlap. */
function makeAppender() {
  const chains = new Map<string, Promise<unknown>>()
  return (runId: string, data: Record<string, unknown>) => {
    const prev = chains.get(runId) ?? Promise.resolve()
    const p = prev.then(async () => {
      const run = runsById.get(runId)!
      const res = await ledger().commit(run, {}, [{ type: 'run.progress', data }])
      runsById.set(runId, res.run)
    })
    chains.set(runId, p.catch(() => {}))
    return p
  }
}

/** Call `fire(i)` for i < count at `rate` per second (bounded in count and time). */
async function paced(count: number, rate: number, fire: (i: number) => void | Promise<unknown>) {
  const start = nowMs()
  const pending: Promise<unknown>[] = []
  const deadline = start + (count / rate) * 1000 * 3 + 10_000
  for (let i = 0; i < count && nowMs() < deadline; i++) {
    const due = start + (i * 1000) / rate
    const wait = due - nowMs()
    if (wait > 1) await sleep(wait)
    const r = fire(i)
    if (r) pending.push(r as Promise<unknown>)
  }
  await Promise.all(pending)
  return { startedAt: start, endedAt: nowMs() }
}

/** BENCH_SQL_STATS=1: time spent per SQL statement shape, printed when the agent stops (a profiling aid). */
const sqlStats = new Map<string, { n: number; ms: number }>()
function traceSql(client: Record<string, (...a: any[]) => Promise<unknown>>) {
  const shape = (q: unknown) => String(typeof q === 'string' ? q : (q as { sql: string }).sql).replace(/\(\?(, \?)*\)(, \(\?(, \?)*\))*/g, '(…)').slice(0, 90)
  for (const m of ['execute', 'batch'] as const) {
    const orig = client[m]!.bind(client)
    client[m] = async (q: any, ...rest: any[]) => {
      const t = nowMs()
      try { return await orig(q, ...rest) } finally {
        const k = m === 'batch' ? `batch[${(q as unknown[]).length}] ${shape((q as unknown[])[0])}` : shape(q)
        const s = sqlStats.get(k) ?? { n: 0, ms: 0 }
        s.n++; s.ms += nowMs() - t
        sqlStats.set(k, s)
      }
    }
  }
  process.on('exit', printSqlStats)
}
function printSqlStats() {
  {
    const top = [...sqlStats].sort((a, b) => b[1].ms - a[1].ms).slice(0, 15)
    for (const [k, s] of top) console.error(`sql ${s.ms.toFixed(0).padStart(7)} ms ${String(s.n).padStart(6)}× ${k}`)
    sqlStats.clear()
  }
}

/** Event i of a baseline broadcast: serialised once, in the shape of runrelay's frame. */
function bareFrame(sample: RunEvent, i: number, count: number): string {
  const e = { ...sample, id: sample.id + i, seq: sample.seq + i, data: { progress: i / count, message: `step ${i + 1} of ${count}`, bench_i: i, bench_t: nowMs() } }
  return `{"type":"event","event":${JSON.stringify(e)}}`
}

serveAgent({
  async startRunrelay(env: Record<string, string> = {}) {
    dataDir = mkdtempSync(join(tmpdir(), 'runrelay-bench-'))
    // BENCH_RATE_LIMIT / BENCH_RATE_SYNC_MS: the per-key rate limit on (off by default: the cases measure the rest).
    // On Bun the production entry of the Bun runtime; on Node, Node's.
    const start = Bun ? ((await import('../src/runtime/bun/main.ts')).startBun as unknown as typeof startNode) : startNode
    node = await start({
      PORT: '0', HOST: '127.0.0.1', RUNRELAY_DATA_DIR: dataDir, RUNRELAY_ROOT_KEY: ROOT_KEY, RUNRELAY_ALLOW_PRIVATE_NETWORK: '1',
      RUNRELAY_LOG: 'silent', RUNRELAY_RATE_LIMIT_PER_MINUTE: process.env.BENCH_RATE_LIMIT ?? '0', RUNRELAY_RATE_LIMIT_SYNC_MS: process.env.BENCH_RATE_SYNC_MS ?? '250', ...env,
    })
    if (process.env.BENCH_SQL_STATS) traceSql((node!.runtime.store['db'] as unknown as { $client: unknown }).$client as Record<string, (...a: any[]) => Promise<unknown>>)
    const hub = node.runtime.hub
    const publish = hub.publish.bind(hub)
    hub.publish = (tenantId: string, evs: RunEvent[]) => {
      if (recordPublish) { const t = nowMs(); for (const e of evs) publishedAt.set(`${e.run_id}:${e.seq}`, t) }
      publish(tenantId, evs)
    }
    const t = await api('POST', '/v1/tenants', { name: 'bench' }, ROOT_KEY)
    key = t.key.key
    return { url: node.url, wsUrl: node.url.replace(/^http/, 'ws'), key, tenantId: t.tenant.id, pid: process.pid, dataDir }
  },

  /** A second runrelay process on the database of another agent's `startRunrelay` (that agent removes the directory). */
  async joinRunrelay({ dataDir: dir, env = {} }: { dataDir: string; env?: Record<string, string> }) {
    node = await startNode({
      PORT: '0', HOST: '127.0.0.1', RUNRELAY_DATA_DIR: dir, RUNRELAY_ROOT_KEY: ROOT_KEY, RUNRELAY_ALLOW_PRIVATE_NETWORK: '1',
      RUNRELAY_LOG: 'silent', RUNRELAY_RATE_LIMIT_PER_MINUTE: process.env.BENCH_RATE_LIMIT ?? '0', RUNRELAY_RATE_LIMIT_SYNC_MS: process.env.BENCH_RATE_SYNC_MS ?? '250', ...env,
    })
    return { url: node.url, wsUrl: node.url.replace(/^http/, 'ws'), pid: process.pid }
  },

  /** Demo workflows that never poll again during a case (first interval one hour), tagged w<i>. */
  async demoWorkflows({ n }: { n: number }) {
    const conn = await api('POST', '/v1/connections', { name: 'demo', provider: 'demo' })
    const ids: string[] = []
    for (let i = 0; i < n; i++) {
      const wf = await api('POST', '/v1/workflows', {
        name: `bench-${i}`, connection_id: conn.id, upstream_workflow_id: 'demo', config: { durationMs: 3_600_000, queueMs: 600_000 },
        poll_policy: { first_interval_ms: 3_600_000, max_interval_ms: 3_600_000 }, tags: [`w${i}`, 'bench'],
      })
      ids.push(wf.id)
    }
    return ids
  },

  /** Trigger runs through the API and wait until each one's first tick (the upstream trigger) is written. */
  async createRuns({ workflowIds, perWorkflow = 1 }: { workflowIds: string[]; perWorkflow?: number }) {
    const out: string[] = []
    await pool(workflowIds.flatMap((w) => Array(perWorkflow).fill(w) as string[]), 16, async (w) => {
      const run = await api('POST', `/v1/workflows/${w}/runs`, { variables: {} })
      out.push(run.id)
    })
    const deadline = Date.now() + 30_000
    for (const id of out) {
      for (;;) {
        const row = await node!.runtime.store.runs.getById(id)
        if (row?.upstreamId) { runsById.set(id, row); break }
        if (Date.now() > deadline) throw new Error(`run ${id} never started`)
        await sleep(20)
      }
    }
    return out
  },

  cpuMark() {
    if (sqlStats.size) { console.error('sql (since the last mark):'); printSqlStats() }
    cpuMark = process.cpuUsage()
    profWindows.push([performance.now(), NaN])
    return null
  },
  cpuSince() { const d = process.cpuUsage(cpuMark); profWindows.at(-1)![1] = performance.now(); return (d.user + d.system) / 1000 },
  rss() { gc(); return process.memoryUsage().rss },
  /** RSS and V8 heap in use, after gc(): heap growth is live JS objects; RSS also counts freed heap V8 keeps and malloc. */
  mem() { gc(); const m = process.memoryUsage(); return { rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external + m.arrayBuffers } },
  sockets() { return node ? node.runtime.streams.openSockets : bare!.clients.size },

  /** Append `count` events round-robin over `runIds` at `rate` a second through the ledger. */
  async emit({ runIds, rate, count, record = false }: { runIds: string[]; rate: number; count: number; record?: boolean }) {
    publishedAt.clear()
    recordPublish = record
    const append = makeAppender()
    const r = await paced(count, rate, (i) => append(runIds[i % runIds.length]!, { progress: i / count, message: `step ${i + 1} of ${count}`, bench_i: i, bench_t: nowMs() }))
    recordPublish = false
    return r
  },
  publishedAt() { return Object.fromEntries(publishedAt) },

  /** A bare ws server: the baseline. */
  async startBare() {
    const server = createServer((_req, res) => { res.writeHead(404); res.end() })
    const wss = new WebSocketServer({ server })
    const clients = new Set<WebSocket>()
    wss.on('connection', (ws) => { clients.add(ws); ws.on('close', () => clients.delete(ws)); ws.on('error', () => {}) })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    bare = { server, wss, clients }
    const port = (server.address() as { port: number }).port
    return { wsUrl: `ws://127.0.0.1:${port}`, pid: process.pid }
  },

  /** The Bun baseline: a bare Bun.serve whose clients all subscribe to one native topic. */
  async startBareBun() {
    if (!Bun) throw new Error('startBareBun needs the agent on Bun')
    const server = Bun.serve({
      hostname: '127.0.0.1', port: 0,
      fetch(req: Request, srv: { upgrade(r: Request): boolean }) { return srv.upgrade(req) ? undefined : new Response(null, { status: 404 }) },
      websocket: { open(ws: { subscribe(t: string): void }) { ws.subscribe('all') }, message() {} },
    })
    bareBun = server
    return { wsUrl: `ws://127.0.0.1:${server.port}`, pid: process.pid }
  },

  /** Broadcast through Bun's native publish (µWebSockets writes the frame to every subscriber). */
  async bareBunEmit({ rate, count, sample }: { rate: number; count: number; sample: RunEvent }) {
    return paced(count, rate, (i) => { bareBun!.publish('all', bareFrame(sample, i, count)) })
  },

  /** Broadcast `count` events at `rate`: each serialised once (same shape as runrelay's frame), sent to every client. */
  async bareEmit({ rate, count, sample }: { rate: number; count: number; sample: RunEvent }) {
    return paced(count, rate, (i) => {
      const frame = bareFrame(sample, i, count)
      for (const c of bare!.clients) c.send(frame)
    })
  },

  /** One real event of a run as subscribers see it: the baseline's frames copy its shape. */
  async sampleEvent({ runId }: { runId: string }) {
    const evs = await node!.runtime.store.runs.events(runId, 0, 100)
    return evs[evs.length - 1]
  },

  // --- upstream economy --------------------------------------------------------------
  async startUpstream() {
    upstream = await startGenericUpstream({ defaultScript: [{ status: 'running', progress: 0.5 }] })
    return { url: upstream.url }
  },
  async httpWorkflow({ intervalMs }: { intervalMs: number }) {
    const conn = await api('POST', '/v1/connections', { name: 'fake', provider: 'http', base_url: upstream!.url, config: {}, credentials: {} })
    const wf = await api('POST', '/v1/workflows', {
      name: 'fake', connection_id: conn.id, upstream_workflow_id: 'jobs', config: genericWorkflowConfig, input_template: { script: '{{script}}' },
      poll_policy: { first_interval_ms: intervalMs, max_interval_ms: intervalMs, deadline_ms: 3_600_000 },
    })
    return wf.id
  },
  async triggerHttpRun({ workflowId }: { workflowId: string }) {
    const run = await api('POST', `/v1/workflows/${workflowId}/runs`, { variables: { script: [{ status: 'running', progress: 0.5 }] } })
    const deadline = Date.now() + 10_000
    for (;;) {
      const row = await node!.runtime.store.runs.getById(run.id)
      if (row?.upstreamId && upstream!.jobs.get(row.upstreamId)?.polls) return { runId: run.id, jobId: row.upstreamId }
      if (Date.now() > deadline) throw new Error('the http run never polled')
      await sleep(20)
    }
  },
  /** A job the baseline clients poll directly. */
  async upstreamJob() {
    const res = await fetch(upstream!.url + '/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
    return ((await res.json()) as { id: string }).id
  },
  jobPolls({ jobId }: { jobId: string }) { return upstream!.jobs.get(jobId)?.polls ?? 0 },
  async cancelRun({ runId }: { runId: string }) { await api('POST', `/v1/runs/${runId}/cancel`, {}); return null },

  // --- throughput ----------------------------------------------------------------------
  async countRuns() { return (await node!.runtime.store['db'].$count(runsTable)) },

  /** Baseline for trigger throughput: the same rows (run + run.created event) inserted raw, `concurrency` at a time. */
  async rawRunInserts({ templateRunId, durationMs, concurrency }: { templateRunId: string; durationMs: number; concurrency: number }) {
    const db = node!.runtime.store['db']
    const [tpl] = await node!.runtime.store.runs.events(templateRunId, 0, 1)
    const row = (await node!.runtime.store.runs.getById(templateRunId))!
    let n = 0
    const end = nowMs() + durationMs
    const start = nowMs()
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (nowMs() < end) {
        const id = randomUUID()
        const at = Date.now()
        await db.batch([
          db.insert(runsTable).values({ ...row, id, lastSeq: 1, createdAt: at, updatedAt: at }),
          db.insert(eventsTable).values({ tenantId: row.tenantId, runId: id, workflowId: row.workflowId, seq: 1, type: 'run.created', status: 'scheduled', data: tpl!.data, createdAt: at }),
        ])
        n++
      }
    }))
    return { n, ms: nowMs() - start }
  },

  /** Events appended through the ledger by `runIds.length` concurrent writers for `durationMs`. */
  async ledgerAppends({ runIds, durationMs }: { runIds: string[]; durationMs: number }) {
    let n = 0
    const end = nowMs() + durationMs
    const start = nowMs()
    await Promise.all(runIds.map(async (runId) => {
      while (nowMs() < end) {
        const run = runsById.get(runId)!
        const res = await ledger().commit(run, {}, [{ type: 'run.progress', data: { progress: 0.5, message: 'step', bench_i: n } }])
        runsById.set(runId, res.run)
        n++
      }
    }))
    return { n, ms: nowMs() - start }
  },

  /** Baseline for event persistence: single-row autocommit inserts, same concurrency and rows. */
  async singleRowInserts({ runIds, durationMs }: { runIds: string[]; durationMs: number }) {
    const db = node!.runtime.store['db']
    let n = 0
    const end = nowMs() + durationMs
    const start = nowMs()
    await Promise.all(runIds.map(async (runId, k) => {
      const run = runsById.get(runId)!
      let seq = 1_000_000
      while (nowMs() < end) {
        await db.insert(eventsTable).values({ tenantId: run.tenantId, runId, workflowId: run.workflowId, seq: seq++, type: 'run.progress', status: run.status, data: { progress: 0.5, message: 'step', bench_i: n, k }, createdAt: Date.now() })
        n++
      }
    }))
    return { n, ms: nowMs() - start }
  },

  async stop() {
    if (node) { await node.stop(); node = undefined }
    if (bare) {
      for (const c of bare.clients) c.terminate()
      bare.wss.close()
      await new Promise<void>((r) => bare!.server.close(() => r()))
      bare = undefined
    }
    if (upstream) { await upstream.close(); upstream = undefined }
    if (dataDir) { rmSync(dataDir, { recursive: true, force: true }); dataDir = undefined }
    return null
  },
  async exit() { if (dataDir) rmSync(dataDir, { recursive: true, force: true }) },
})
