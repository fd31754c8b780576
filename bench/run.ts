/**
 * `npm run bench [-- case…]`: each case with its baseline in the same run, on loopback.
 * The server (runrelay or the baseline) and the load run in separate processes; server CPU
 * and RSS are read inside the server process. Prints a table, writes bench/results.json.
 * Cases: fanout (CPU + latency), watch (runs polled per process, opt-in: bench/watch.ts), bun (the Bun runtime against bare Bun and ws), detection (adaptive polling), memory, upstream, trigger, persist, feed, tracing, startup, crossproc, processes; workers (wrangler dev), workers-fanout (local workerd, bench/workers-fanout.ts), workers-watch (runs polled by run objects vs a bare alarm loop, bench/workers-watch.ts) and figures (the tests' own figures, bench/figures.ts) are opt-in.
 * BENCH_ROUNDS=n repeats each pair (medians reported), BENCH_SCALE=0.1 shrinks counts,
 * BENCH_CPU_PROF=<dir> profiles the agents, BENCH_SQL_STATS=1 times SQL by statement.
 */
import { createRequire } from 'node:module'
import { writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { execSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { startAgent, sleep, type Agent } from './rpc.ts'
import { detection as replayDetection } from './detection.ts'
import { figures } from './figures.ts'
import { startup } from './startup.ts'
import { cpuSince, holdingRun, workerdCpu, workersFanout } from './workers-fanout.ts'
import { watch } from './watch.ts'
import { workersWatch } from './workers-watch.ts'

const require = createRequire(import.meta.url)
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 1))
const SCALE = Math.max(0.01, Number(process.env.BENCH_SCALE ?? 1))
const n = (x: number) => Math.max(1, Math.round(x * SCALE))

interface Row { case: string; metric: string; runrelay: number; baseline: number; ratio: number; goal: string; met: boolean; unit: string; note?: string }
const rows: Row[] = []
const details: Record<string, unknown> = {}

/** One table row; `met` overrides the ratio verdict for a goal stated in absolute terms (e.g. lag p99 ≤ 250 ms). */
function row(r: Omit<Row, 'ratio' | 'met'> & { higherIsBetter?: boolean; limit: number; met?: boolean }) {
  const ratio = r.runrelay / r.baseline
  const met = r.met ?? (r.higherIsBetter ? ratio >= r.limit : ratio <= r.limit)
  const { higherIsBetter: _h, limit: _l, met: _m, ...rest } = r
  rows.push({ ...rest, ratio, met })
  console.log(`  ${r.case} ${r.metric}: runrelay ${fmt(r.runrelay)} ${r.unit}, baseline ${fmt(r.baseline)} ${r.unit}, ratio ${ratio.toFixed(2)} (goal ${r.goal}) ${met ? 'met' : 'MISSED'}`)
}
const fmt = (x: number) => (x === null || !Number.isFinite(x) ? String(x) : Math.abs(x) >= 100 ? x.toFixed(0) : Math.abs(x) >= 1 ? x.toFixed(2) : x.toPrecision(3))
const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]! }

/** A server agent and a client agent for one phase; both stopped whatever happens. */
async function phase<T>(fn: (server: Agent, client: Agent) => Promise<T>, runtime: 'node' | 'bun' = 'node'): Promise<T> {
  const server = startAgent('./server-agent.ts', 'server', runtime)
  const client = startAgent('./client-agent.ts', 'client')
  try {
    return await fn(server, client)
  } finally {
    await Promise.allSettled([client.stop(), server.stop()])
  }
}

async function runrelaySetup(server: Agent, workflows = 1, perWorkflow = 1) {
  const s = await server.call('startRunrelay')
  const workflowIds: string[] = await server.call('demoWorkflows', { n: workflows })
  const runIds: string[] = await server.call('createRuns', { workflowIds, perWorkflow })
  return { ...s, workflowIds, runIds, auth: { authorization: `Bearer ${s.key}` } }
}

/**
 * One fan-out measurement: `urls.length` WebSocket subscribers, then the server agent's `emit`
 * command; server CPU per delivered event and latency (from the recorded publish times, or the
 * stamp in each frame).
 */
async function fanoutPhase(server: Agent, client: Agent, urls: string[], headers: Record<string, string>, [emit, args]: [string, { count: number } & Record<string, unknown>], publishedAt: boolean, idleMs = 0) {
  const c = await client.call('connect', { urls, headers, latency: true })
  await sleep(1000)
  // Optionally, the server's CPU while nothing is published (its background timers), per second.
  let idleCpuMsPerS: number | undefined
  if (idleMs > 0) { await server.call('cpuMark'); await sleep(idleMs); idleCpuMsPerS = (await server.call('cpuSince')) / (idleMs / 1000) }
  await client.call('reset')
  await server.call('cpuMark')
  await server.call(emit, args, 120_000)
  const got = await client.call('waitFor', { total: args.count * c.open, timeoutMs: 20_000 })
  const cpuMs = await server.call('cpuSince')
  const lat = await client.call('latency', publishedAt ? { publishedAt: await server.call('publishedAt') } : {})
  return { open: c.open, failed: c.failed, delivered: got.received, cpuMs, cpuUsPerEvent: (cpuMs * 1000) / got.received, lat, ...(idleCpuMsPerS !== undefined ? { idleCpuMsPerS } : {}) }
}

// ---------------------------------------------------------------------------------------
async function fanout() {
  const SUBS = n(1000), RATE = 20, COUNT = n(160)
  console.log(`fan-out + latency: ${SUBS} WebSocket subscribers of one run, ${COUNT} events at ${RATE}/s`)
  const results: { rr: any; bare: any }[] = []
  let sample: any
  for (let round = 0; round < ROUNDS; round++) {
    const rr = await phase(async (server, client) => {
      const s = await runrelaySetup(server)
      sample = await server.call('sampleEvent', { runId: s.runIds[0] })
      return fanoutPhase(server, client, Array(SUBS).fill(`${s.wsUrl}/v1/runs/${s.runIds[0]}/stream`), s.auth, ['emit', { runIds: s.runIds, rate: RATE, count: COUNT, record: true }], true)
    })
    const bare = await phase(async (server, client) => {
      const s = await server.call('startBare')
      return fanoutPhase(server, client, Array(SUBS).fill(s.wsUrl), {}, ['bareEmit', { rate: RATE, count: COUNT, sample }], false)
    })
    console.log(`  round ${round + 1}: runrelay ${JSON.stringify(rr)}\n           bare ${JSON.stringify(bare)}`)
    results.push({ rr, bare })
  }
  details.fanout = results
  const pick = (f: (r: { rr: any; bare: any }) => [number, number]) => { const xs = results.map(f); return [median(xs.map((x) => x[0])), median(xs.map((x) => x[1]))] as const }
  const [cr, cb] = pick((r) => [r.rr.cpuUsPerEvent, r.bare.cpuUsPerEvent])
  row({ case: 'fan-out CPU', metric: `server CPU per delivered event (${SUBS} subs)`, runrelay: cr, baseline: cb, unit: 'µs', goal: '≤ 1.5×', limit: 1.5 })
  const [p50r, p50b] = pick((r) => [r.rr.lat.p50, r.bare.lat.p50])
  const [p99r, p99b] = pick((r) => [r.rr.lat.p99, r.bare.lat.p99])
  row({ case: 'delivery latency', metric: `p50 persisted → received (${SUBS} subs × ${RATE}/s)`, runrelay: p50r, baseline: p50b, unit: 'ms', goal: '≤ 1.5×', limit: 1.5 })
  row({ case: 'delivery latency', metric: 'p99 persisted → received', runrelay: p99r, baseline: p99b, unit: 'ms', goal: '≤ 1.5×', limit: 1.5 })
}

// ---------------------------------------------------------------------------------------
/** The fourth runtime: runrelay on Bun against Bun's native topic publish and bare `ws` on Node. */
async function bun() {
  const SUBS = n(1000), RATE = 20, COUNT = n(160)
  console.log(`bun fan-out: ${SUBS} WebSocket subscribers of one run, ${COUNT} events at ${RATE}/s; runrelay on Bun, bare Bun publish, bare ws on Node`)
  const results: { rrBun: any; bareBun: any; bareWs: any }[] = []
  let sample: any
  for (let round = 0; round < ROUNDS; round++) {
    const rrBun = await phase(async (server, client) => {
      const s = await runrelaySetup(server)
      sample = await server.call('sampleEvent', { runId: s.runIds[0] })
      return fanoutPhase(server, client, Array(SUBS).fill(`${s.wsUrl}/v1/runs/${s.runIds[0]}/stream`), s.auth, ['emit', { runIds: s.runIds, rate: RATE, count: COUNT, record: true }], true, 3000)
    }, 'bun')
    const bareBun = await phase(async (server, client) => {
      const s = await server.call('startBareBun')
      return fanoutPhase(server, client, Array(SUBS).fill(s.wsUrl), {}, ['bareBunEmit', { rate: RATE, count: COUNT, sample }], false)
    }, 'bun')
    const bareWs = await phase(async (server, client) => {
      const s = await server.call('startBare')
      return fanoutPhase(server, client, Array(SUBS).fill(s.wsUrl), {}, ['bareEmit', { rate: RATE, count: COUNT, sample }], false)
    })
    console.log(`  round ${round + 1}: runrelay on bun ${JSON.stringify(rrBun)}\n           bare bun ${JSON.stringify(bareBun)}\n           bare ws ${JSON.stringify(bareWs)}`)
    results.push({ rrBun, bareBun, bareWs })
  }
  details.bun = results
  const med = (f: (r: (typeof results)[number]) => number) => median(results.map(f))
  row({ case: 'bun fan-out CPU', metric: `server CPU per delivered event, runrelay on Bun vs bare Bun publish (${SUBS} subs)`, runrelay: med((r) => r.rrBun.cpuUsPerEvent), baseline: med((r) => r.bareBun.cpuUsPerEvent), unit: 'µs', goal: '≤ 1.2×', limit: 1.2 })
  row({ case: 'bun fan-out CPU', metric: 'runrelay on Bun vs bare ws on Node', runrelay: med((r) => r.rrBun.cpuUsPerEvent), baseline: med((r) => r.bareWs.cpuUsPerEvent), unit: 'µs', goal: '≤ 1.0×', limit: 1.0 })
  row({ case: 'bun delivery latency', metric: 'p50, runrelay on Bun vs bare Bun publish', runrelay: med((r) => r.rrBun.lat.p50), baseline: med((r) => r.bareBun.lat.stampP50), unit: 'ms', goal: '≤ 1.5×', limit: 1.5 })
  // What runrelay spends whatever it publishes (the tail's and scheduler's timers), spread over the deliveries of the emit window.
  const idleUs = med((r) => r.rrBun.idleCpuMsPerS) * (COUNT / RATE) * 1000 / (COUNT * SUBS)
  console.log(`  bun: runrelay's idle CPU ${med((r) => r.rrBun.idleCpuMsPerS).toFixed(1)} ms/s with ${SUBS} sockets open = ${idleUs.toFixed(2)} µs of its ${med((r) => r.rrBun.cpuUsPerEvent).toFixed(2)} µs per delivery`)
  details.bunIdleUsPerDelivery = idleUs
  row({ case: 'bun delivery latency', metric: 'p99, runrelay on Bun vs bare Bun publish', runrelay: med((r) => r.rrBun.lat.p99), baseline: med((r) => r.bareBun.lat.stampP99), unit: 'ms', goal: '≤ 1.5×', limit: 1.5 })
}

// ---------------------------------------------------------------------------------------
/** Adaptive polling against fixed 1 s / 5 s pollers and the backoff (bench/detection.ts: a replay in virtual time). */
async function detection() {
  console.log('detection: log-normal run durations (medians 30 s, 2 min, 10 min), 500 runs per strategy, virtual time')
  const all = replayDetection()
  details.detection = all
  for (const r of all) console.log(`  ${r.median} ${r.strategy}: ${r.requestsPerRun.toFixed(1)} requests/run, terminal delay p50 ${(r.terminalP50 / 1000).toFixed(2)} s p95 ${(r.terminalP95 / 1000).toFixed(2)} s, any change p50 ${(r.changeP50 / 1000).toFixed(2)} s p95 ${(r.changeP95 / 1000).toFixed(2)} s`)
  for (const median of new Set(all.map((r) => r.median))) {
    const fixed = all.find((r) => r.median === median && r.strategy === 'fixed 1 s')!
    const ours = all.find((r) => r.median === median && r.strategy === 'runrelay adaptive')!
    row({ case: 'detection', metric: `upstream requests per run vs fixed 1 s (median ${median})`, runrelay: ours.requestsPerRun, baseline: fixed.requestsPerRun, unit: 'req', goal: '≤ 0.5×', limit: 0.5 })
    row({ case: 'detection', metric: `p50 terminal detection delay vs fixed 1 s (median ${median})`, runrelay: ours.terminalP50, baseline: fixed.terminalP50, unit: 'ms', goal: '≤ 1.5×', limit: 1.5 })
  }
}

// ---------------------------------------------------------------------------------------
async function memory() {
  const CONNS = n(10_000)
  console.log(`idle memory: ${CONNS} idle connections`)
  const measure = async (server: Agent, client: Agent, urls: string[], headers: Record<string, string>) => {
    await sleep(500)
    const m0 = await server.call('mem')
    const c = await client.call('connect', { urls, headers, concurrency: 200 }, 300_000)
    await sleep(2000)
    const m1 = await server.call('mem')
    const open: number = await server.call('sockets')
    const before: number = m0.rss, after: number = m1.rss
    return {
      open, clientOpen: c.open, failed: c.failed, connectMs: c.ms, before, after, perConn: (after - before) / open,
      // Live JS objects per socket (heap used after gc), apart from what RSS adds (heap V8 keeps, malloc).
      heapPerConn: (m1.heapUsed - m0.heapUsed) / open, heapTotalPerConn: (m1.heapTotal - m0.heapTotal) / open, externalPerConn: (m1.external - m0.external) / open,
    }
  }
  const results: any[] = []
  for (let round = 0; round < ROUNDS; round++) {
    const rr = await phase(async (server, client) => {
      const s = await runrelaySetup(server)
      return measure(server, client, Array(CONNS).fill(`${s.wsUrl}/v1/runs/${s.runIds[0]}/stream`), s.auth)
    })
    const bare = await phase(async (server, client) => {
      const s = await server.call('startBare')
      return measure(server, client, Array(CONNS).fill(s.wsUrl), {})
    })
    console.log(`  round ${round + 1}: runrelay ${JSON.stringify(rr)}\n           bare ${JSON.stringify(bare)}`)
    results.push({ rr, bare })
  }
  details.memory = results
  row({ case: 'idle memory', metric: `RSS per idle connection (${CONNS})`, runrelay: median(results.map((r) => r.rr.perConn)) / 1024, baseline: median(results.map((r) => r.bare.perConn)) / 1024, unit: 'KiB', goal: '≤ 1.2×', limit: 1.2 })
  // Not the goal (RSS is): separates retained JS objects from the rest of the RSS growth.
  row({ case: 'idle memory', metric: `JS heap used per idle connection, after gc (${CONNS}; info)`, runrelay: median(results.map((r) => r.rr.heapPerConn)) / 1024, baseline: median(results.map((r) => r.bare.heapPerConn)) / 1024, unit: 'KiB', goal: 'info', limit: 1.3 })
}

// ---------------------------------------------------------------------------------------
async function upstream() {
  const INTERVAL = 1000, WINDOW = 4000
  const Ns = [1, 10, 100, 1000].map(n)
  console.log(`upstream economy: N subscribers of one run, poll interval ${INTERVAL} ms, window ${WINDOW} ms`)
  const out: any[] = []
  await phase(async (server, client) => {
    const s = await server.call('startRunrelay')
    const up = await server.call('startUpstream')
    const wf = await server.call('httpWorkflow', { intervalMs: INTERVAL })
    for (const N of Ns) {
      const { runId, jobId } = await server.call('triggerHttpRun', { workflowId: wf })
      const c = await client.call('connect', { urls: Array(N).fill(`${s.wsUrl}/v1/runs/${runId}/stream`), headers: { authorization: `Bearer ${s.key}` } })
      const p0: number = await server.call('jobPolls', { jobId })
      await sleep(WINDOW)
      const rr = (await server.call('jobPolls', { jobId })) - p0
      await client.call('closeAll')
      await server.call('cancelRun', { runId })
      const direct = await server.call('upstreamJob')
      const base = await client.call('pollDirect', { url: `${up.url}/jobs/${direct}`, n: N, intervalMs: INTERVAL, durationMs: WINDOW }, 60_000)
      console.log(`  N=${N}: runrelay ${rr} upstream requests (${c.open} subscribers), direct ${base.requests} (${base.errors} errors)`)
      out.push({ N, subscribers: c.open, runrelay: rr, direct: base.requests })
    }
  })
  details.upstream = out
  const first = out[0], last = out[out.length - 1]
  for (const o of out) {
    rows.push({ case: 'upstream economy', metric: `upstream requests in ${WINDOW / 1000} s, N=${o.N}`, runrelay: o.runrelay, baseline: o.direct, ratio: o.runrelay / o.direct, unit: 'req', goal: 'independent of N', met: o.runrelay <= first.runrelay + 1 })
  }
  console.log(`  runrelay requests N=${first.N}→${last.N}: ${first.runrelay}→${last.runrelay}; direct ${first.direct}→${last.direct}`)
}

// ---------------------------------------------------------------------------------------
async function trigger() {
  const DURATION = 5000, CONCURRENCY = 16
  console.log(`trigger throughput: ${CONCURRENCY} concurrent API triggers for ${DURATION} ms vs raw inserts of the same rows`)
  const results: any[] = []
  for (let round = 0; round < ROUNDS; round++) {
    const r = await phase(async (server, client) => {
      const s = await runrelaySetup(server)
      const before: number = await server.call('countRuns')
      await server.call('cpuMark')
      const api = await client.call('triggerLoad', { url: s.url, key: s.key, workflowId: s.workflowIds[0], concurrency: CONCURRENCY, durationMs: DURATION, max: 50_000 }, 120_000)
      const apiCpuMs: number = await server.call('cpuSince')
      const persisted = (await server.call('countRuns')) - before
      await server.call('cpuMark')
      const raw = await server.call('rawRunInserts', { templateRunId: s.runIds[0], durationMs: DURATION, concurrency: CONCURRENCY }, 120_000)
      const rawCpuMs: number = await server.call('cpuSince')
      return {
        api: { ...api, persisted, perSec: (persisted * 1000) / api.ms, serverCpuPct: (100 * apiCpuMs) / api.ms, cpuMsPerRun: apiCpuMs / persisted },
        raw: { ...raw, perSec: (raw.n * 1000) / raw.ms, serverCpuPct: (100 * rawCpuMs) / raw.ms, cpuMsPerRun: rawCpuMs / raw.n },
      }
    })
    console.log(`  round ${round + 1}: ${JSON.stringify(r)}`)
    results.push(r)
  }
  details.trigger = results
  row({ case: 'trigger throughput', metric: 'runs triggered and persisted per second', runrelay: median(results.map((r) => r.api.perSec)), baseline: median(results.map((r) => r.raw.perSec)), unit: 'runs/s', goal: '≥ 0.5×', limit: 0.5, higherIsBetter: true })
}

// ---------------------------------------------------------------------------------------
async function persist() {
  const RUNS = 100, DURATION = 3000
  console.log(`event persistence: ${RUNS} runs appending concurrently for ${DURATION} ms`)
  const results: any[] = []
  for (let round = 0; round < ROUNDS; round++) {
    const r = await phase(async (server) => {
      const s = await runrelaySetup(server, 1, RUNS)
      const single = await server.call('singleRowInserts', { runIds: s.runIds, durationMs: DURATION }, 60_000)
      const ledger = await server.call('ledgerAppends', { runIds: s.runIds, durationMs: DURATION }, 60_000)
      return { single: { ...single, perSec: (single.n * 1000) / single.ms }, ledger: { ...ledger, perSec: (ledger.n * 1000) / ledger.ms } }
    })
    console.log(`  round ${round + 1}: ${JSON.stringify(r)}`)
    results.push(r)
  }
  details.persist = results
  row({ case: 'event persistence', metric: `events appended per second (${RUNS} concurrent runs)`, runrelay: median(results.map((r) => r.ledger.perSec)), baseline: median(results.map((r) => r.single.perSec)), unit: 'ev/s', goal: '≥ 3×', limit: 3, higherIsBetter: true })
}

// ---------------------------------------------------------------------------------------
async function feed() {
  const SUBS = n(1000), EVENTS = n(10_000), RATE = 1000, WF = 20
  console.log(`feed filter: ${SUBS} feed subscribers with mixed filters, ${EVENTS} events over ${WF} workflows at ${RATE}/s`)
  const run = (filtered: boolean, subs: number) => phase(async (server, client) => {
    const s = await runrelaySetup(server, WF, 1)
    const wf = s.workflowIds
    const urls = Array.from({ length: subs }, (_, i) => {
      if (!filtered) return `${s.wsUrl}/v1/stream`
      const k = i % WF, o = (k + 1) % WF
      switch (i % 4) {
        case 0: return `${s.wsUrl}/v1/stream?workflow_id=${wf[k]}`
        case 1: return `${s.wsUrl}/v1/stream?tag=w${k}`
        case 2: return `${s.wsUrl}/v1/stream?workflow_id=${wf[k]}&status=queued&status=running`
        default: return `${s.wsUrl}/v1/stream?workflow_id=${wf[k]}&tag=w${o}` // matches nothing
      }
    })
    const c = await client.call('connect', { urls, headers: s.auth })
    await sleep(1000)
    await client.call('reset')
    await server.call('cpuMark')
    const e = await server.call('emit', { runIds: s.runIds, rate: RATE, count: EVENTS }, 120_000)
    await sleep(300)
    let last = -1, got = 0
    for (let i = 0; i < 100 && got !== last; i++) { last = got; await sleep(200); got = await client.call('received') }
    const cpuMs: number = await server.call('cpuSince')
    return { subs: c.open, delivered: got, emitMs: e.endedAt - e.startedAt, cpuMs, cpuUsPerDelivered: (cpuMs * 1000) / got }
  })
  const results: any[] = []
  for (let round = 0; round < ROUNDS; round++) {
    const filtered = await run(true, SUBS)
    // Same events and about as many deliveries, without filters: SUBS × 3/4 subscribers match 1/WF of the events.
    const plain = await run(false, Math.max(1, Math.round(filtered.delivered / EVENTS)))
    console.log(`  round ${round + 1}: filtered ${JSON.stringify(filtered)}\n           unfiltered ${JSON.stringify(plain)}`)
    results.push({ filtered, plain })
  }
  details.feed = results
  row({ case: 'feed filter', metric: `server CPU per delivered event (${SUBS} filtered subs vs unfiltered, ${EVENTS} events)`, runrelay: median(results.map((r) => r.filtered.cpuUsPerDelivered)), baseline: median(results.map((r) => r.plain.cpuUsPerDelivered)), unit: 'µs', goal: '≤ 1.2×', limit: 1.2 })
}

// ---------------------------------------------------------------------------------------
/** A loopback OTLP/HTTP endpoint that accepts and drops every export, counting bytes. */
async function otlpSink(): Promise<{ url: string; bytes: () => number; close: () => Promise<void> }> {
  const { createServer } = await import('node:http')
  let bytes = 0
  const srv = createServer((req, res) => { req.on('data', (c: Buffer) => (bytes += c.length)); req.on('end', () => { res.writeHead(200, { 'content-type': 'application/json' }); res.end('{}') }) })
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r))
  const port = (srv.address() as { port: number }).port
  return { url: `http://127.0.0.1:${port}`, bytes: () => bytes, close: () => new Promise((r) => { srv.closeAllConnections(); srv.close(() => r()) }) }
}

async function tracing() {
  const DURATION = 5000, CONCURRENCY = 16
  console.log(`tracing: ${CONCURRENCY} concurrent API triggers for ${DURATION} ms with OTLP export on vs off (metrics on in both)`)
  const sink = await otlpSink()
  const load = (env: Record<string, string>) => phase(async (server, client) => {
    const s = await server.call('startRunrelay', env)
    const workflowIds: string[] = await server.call('demoWorkflows', { n: 1 })
    const before: number = await server.call('countRuns')
    await server.call('cpuMark')
    const api = await client.call('triggerLoad', { url: s.url, key: s.key, workflowId: workflowIds[0], concurrency: CONCURRENCY, durationMs: DURATION, max: 50_000 }, 120_000)
    const cpuMs: number = await server.call('cpuSince')
    const persisted = (await server.call('countRuns')) - before
    return { persisted, perSec: (persisted * 1000) / api.ms, cpuMsPerRun: cpuMs / persisted }
  })
  const results: any[] = []
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const off = await load({})
      const sent = sink.bytes()
      const on = await load({ OTEL_EXPORTER_OTLP_ENDPOINT: sink.url, OTEL_BSP_SCHEDULE_DELAY: '200' })
      const r = { off, on, exportedBytesPerRun: (sink.bytes() - sent) / on.persisted }
      console.log(`  round ${round + 1}: ${JSON.stringify(r)}`)
      results.push(r)
    }
  } finally {
    await sink.close()
  }
  details.tracing = results
  row({ case: 'tracing', metric: 'runs triggered per second, traces exported', runrelay: median(results.map((r) => r.on.perSec)), baseline: median(results.map((r) => r.off.perSec)), unit: 'runs/s', goal: '≥ 0.7×', limit: 0.7, higherIsBetter: true })
}

// ---------------------------------------------------------------------------------------

/**
 * Indicative: one run's events fanned out by its Durable Object (hibernatable sockets) in local
 * workerd (wrangler dev). The run is an `http` run against the generic fake upstream (in this
 * process) polled every 100 ms: it holds still (no new events) while the subscribers connect,
 * then its script is extended so that each poll yields one run.progress event (~10/s).
 */
async function workers() {
  const SUBS = n(1000), COUNT = n(160), POLL_MS = 100
  console.log(`workers (indicative): ${SUBS} WebSocket subscribers of one run's Durable Object in wrangler dev, ${COUNT} events at ~${1000 / POLL_MS}/s`)
  const { launchWorkers } = await import('../test/conformance/launch-workers.ts')
  const { startGenericUpstream } = await import('../test/fakes/generic-upstream.ts')
  const up = await startGenericUpstream()
  const w = await launchWorkers({ RUNRELAY_RATE_LIMIT_PER_MINUTE: '0', RUNRELAY_HEARTBEAT_MS: '15000' }, { startTimeoutMs: 90_000 })
  const client = startAgent('./client-agent.ts', 'client')
  try {
    const { key, run, hold } = await holdingRun(w, up, POLL_MS)
    const wsUrl = w.url.replace(/^http/, 'ws')
    const c = await client.call('connect', { urls: Array(SUBS).fill(`${wsUrl}/v1/runs/${run.id}/stream`), headers: { authorization: `Bearer ${key}` }, concurrency: 50, latency: true }, 300_000)
    // Every subscriber's replay is done once the object has heartbeat-free quiet: wait until no frame arrives for 1 s (bounded).
    let prev = -1
    for (let i = 0; i < 60; i++) { const r = await client.call('received'); if (r === prev) break; prev = r; await sleep(1000) }
    await client.call('reset')
    const job = [...up.jobs.values()][0]
    if (!job) throw new Error('the run never triggered its upstream job')
    const cpu0 = workerdCpu()
    const t0 = Date.now()
    // From the next poll on: COUNT distinct progress values (one run.progress event each), then it holds.
    job.script = [...Array(job.polls + 1).fill(hold), ...Array.from({ length: COUNT }, (_, k) => ({ status: 'running', progress: (k + 1) / (COUNT + 1) }))]
    let last = -1, got = 0
    for (let i = 0; i < 300 && got < COUNT * c.open; i++) {
      await sleep(200)
      got = await client.call('received')
      if (got && got === last && Date.now() - t0 > (COUNT * POLL_MS) + 5_000) break // stalled well after the script's end
      last = got
    }
    const cpu1 = workerdCpu()
    const cpuMs = cpuSince(cpu0)
    const lat = await client.call('latency', {})
    const spanMs = lat.lastAt - lat.firstAt
    // wrangler dev runs two workerd instances: its proxy (listening on the dev port) and the Worker with its objects.
    const port = new URL(w.url).port
    const perProcess = [...cpu1].map(([pid, ms]) => ({ pid, role: cmdline(pid).includes(`entry=127.0.0.1:${port} `) ? 'wrangler proxy' : 'worker', cpuMs: ms - (cpu0.get(pid) ?? 0) }))
    const workerCpuMs = perProcess.filter((p) => p.role === 'worker').reduce((a, p) => a + p.cpuMs, 0)
    const r = {
      subs: c.open, failed: c.failed, connectMs: Math.round(c.ms), events: COUNT, expected: COUNT * c.open, delivered: got,
      spanMs: Math.round(spanMs), deliveredPerSec: (got * 1000) / spanMs, workerdCpuMs: cpuMs, cpuUsPerDelivered: (cpuMs * 1000) / got,
      workerdCpuPct: (100 * cpuMs) / spanMs, workerCpuUsPerDelivered: (workerCpuMs * 1000) / got, proxyCpuUsPerDelivered: ((cpuMs - workerCpuMs) * 1000) / got, latencyFromEventAt: { p50: lat.atP50, p99: lat.atP99, n: lat.n }, perProcess,
    }
    console.log(`  ${JSON.stringify(r)}`)
    details.workers = r
  } finally {
    await client.stop()
    await w.stop()
    await up.close()
  }
}

// ---------------------------------------------------------------------------------------
/** Upstream requests per run with 3 server processes on one database against 1: a second watcher of a run would show as more. */
async function processes() {
  const RUNS = n(100)
  const { startCluster, clusterTenant, allRuns } = await import('../test/helpers/cluster.ts')
  const { startGenericUpstream, genericWorkflowConfig } = await import('../test/fakes/generic-upstream.ts')
  console.log(`processes: ${RUNS} runs (a trigger and 6 polls each) on 1 process, then on 3 processes sharing one database file`)
  const script = [...Array.from({ length: 5 }, () => ({ status: 'running' })), { status: 'completed', result: { ok: true } }]
  const measure = async (size: number) => {
    const up = await startGenericUpstream({ ignoreIdempotencyKey: true })
    const cluster = await startCluster(size, { RUNRELAY_LOG: 'silent' })
    try {
      const t = await clusterTenant(cluster, 'bench')
      const conn = await t.client(0).post('/v1/connections', { name: 'fake', provider: 'http', base_url: up.url })
      const wf = await t.client(0).post('/v1/workflows', { name: 'fake', connection_id: conn.body.id, upstream_workflow_id: 'jobs', config: genericWorkflowConfig, input_template: { script: '{{script}}' }, poll_policy: { first_interval_ms: 200, max_interval_ms: 200 } })
      const t0 = Date.now()
      for (let i = 0; i < RUNS; i += 20) {
        await Promise.all(Array.from({ length: Math.min(20, RUNS - i) }, (_, j) => t.client((i + j) % size).post(`/v1/workflows/${wf.body.id}/runs`, { variables: { script } })))
      }
      const deadline = Date.now() + 120_000
      while (!(await allRuns(t.client(0))).every((r) => r.finished_at)) {
        if (Date.now() > deadline) throw new Error('runs did not finish in 120 s')
        await sleep(250)
      }
      return { size, runs: RUNS, requests: up.requests, perRun: up.requests / RUNS, ms: Date.now() - t0 }
    } finally {
      await cluster.close()
      await up.close()
    }
  }
  const one = await measure(1)
  const three = await measure(3)
  console.log(`  1 process: ${JSON.stringify(one)}\n  3 processes: ${JSON.stringify(three)}`)
  details.processes = { one, three }
  row({ case: 'processes', metric: 'upstream requests per run, 3 processes (baseline: 1 process)', runrelay: three.perRun, baseline: one.perRun, unit: 'req/run', goal: '1.00×', limit: 1.0 })
}

function cmdline(pid: number): string {
  const { readFileSync } = require('node:fs') as typeof import('node:fs')
  try { return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').slice(0, 400) } catch { return '?' }
}

// ---------------------------------------------------------------------------------------
// ---------------------------------------------------------------------------------------
/**
 * Delivery on another process against the same process: two runrelay processes on one
 * database; events appended through process A's ledger; WebSocket subscribers of the run on A
 * (the baseline) and on B, each in its own client agent. Latency is A's publish → received, so
 * the difference is what crossing processes adds. With no bus (the events-table tail, default
 * period) and with a Redis bus (when redis-server is installed).
 */
async function crossproc() {
  const SUBS = n(20), RATE = 20, COUNT = n(100)
  const { haveRedis, startRedis } = await import('../test/helpers/redis.ts')
  const modes: Array<{ name: string; goalMs: number; bus: boolean }> = [{ name: 'no bus', goalMs: 250, bus: false }]
  if (haveRedis()) modes.push({ name: 'Redis bus', goalMs: 20, bus: true })
  else console.log('  redis-server is not installed: the bus mode is skipped (apt-get install -y redis-server)')
  console.log(`cross-process delivery: ${SUBS} WS subscribers of one run on the committing process and ${SUBS} on another, ${COUNT} events at ${RATE}/s`)
  const out: Record<string, unknown[]> = {}
  for (const mode of modes) {
    const results: Array<{ same: any; other: any }> = []
    for (let round = 0; round < ROUNDS; round++) {
      const redis = mode.bus ? await startRedis() : undefined
      const env: Record<string, string> = redis ? { RUNRELAY_BUS_URL: redis.url } : {}
      const a = startAgent('./server-agent.ts', 'server-a'), b = startAgent('./server-agent.ts', 'server-b')
      const ca = startAgent('./client-agent.ts', 'client-a'), cb = startAgent('./client-agent.ts', 'client-b')
      try {
        const s = await a.call('startRunrelay', env)
        const workflowIds: string[] = await a.call('demoWorkflows', { n: 1 })
        const runIds: string[] = await a.call('createRuns', { workflowIds })
        const other = await b.call('joinRunrelay', { dataDir: s.dataDir, env })
        const headers = { authorization: `Bearer ${s.key}` }
        const oa = await ca.call('connect', { urls: Array(SUBS).fill(`${s.wsUrl}/v1/runs/${runIds[0]}/stream`), headers, latency: true })
        const ob = await cb.call('connect', { urls: Array(SUBS).fill(`${other.wsUrl}/v1/runs/${runIds[0]}/stream`), headers, latency: true })
        await sleep(1000)
        await Promise.all([ca.call('reset'), cb.call('reset')])
        await a.call('emit', { runIds, rate: RATE, count: COUNT, record: true }, 120_000)
        const [ga, gb] = await Promise.all([ca.call('waitFor', { total: COUNT * oa.open, timeoutMs: 20_000 }), cb.call('waitFor', { total: COUNT * ob.open, timeoutMs: 20_000 })])
        const publishedAt = await a.call('publishedAt')
        const same = { open: oa.open, delivered: ga.received, expected: COUNT * oa.open, lat: await ca.call('latency', { publishedAt }) }
        const otherLat = { open: ob.open, delivered: gb.received, expected: COUNT * ob.open, lat: await cb.call('latency', { publishedAt }) }
        console.log(`  ${mode.name} round ${round + 1}: same process ${JSON.stringify(same)}
           other process ${JSON.stringify(otherLat)}`)
        results.push({ same, other: otherLat })
      } finally {
        await Promise.allSettled([ca.stop(), cb.stop()])
        await b.stop() // before A removes the database directory
        await a.stop()
        await redis?.stop()
      }
    }
    out[mode.name] = results
    for (const p of [50, 99] as const) {
      const other = median(results.map((r) => r.other.lat[`p${p}`])), same = median(results.map((r) => r.same.lat[`p${p}`]))
      const added = other - same
      rows.push({
        case: `cross-process delivery, ${mode.name}`, metric: `p${p} publish on A → received, on B (runrelay) vs on A (baseline); added ${fmt(added)} ms`,
        runrelay: other, baseline: same, ratio: other / same, unit: 'ms', goal: p === 99 ? `added ≤ ${mode.goalMs} ms` : 'info', met: p === 99 ? added <= mode.goalMs : true,
      })
      console.log(`  ${mode.name} p${p}: other process ${fmt(other)} ms, same process ${fmt(same)} ms, added ${fmt(added)} ms`)
    }
    const lost = results.reduce((x, r) => x + (r.other.expected - r.other.delivered), 0)
    if (lost) console.log(`  ${mode.name}: ${lost} deliveries missing on the other process within the wait`)
  }
  details.crossproc = out
}

const CASES: Record<string, () => Promise<void>> = { fanout, bun, detection, memory, upstream, trigger, persist, feed, tracing, workers, 'workers-fanout': () => workersFanout(details, n), 'workers-watch': () => workersWatch(row, details, n), startup: () => startup(row, details), crossproc, processes, figures: () => figures(details), watch: () => watch(row, details, process.argv.includes('--quick')) }
// workers (wrangler dev), workers-fanout and workers-watch (workerd through Miniflare), figures (the test lanes with RUNRELAY_FIGURES=1) and watch (minutes; `-- watch --quick` for a smoke run) are opt-in: `npm run bench -- workers`; see BENCHMARKS.md.
const DEFAULT = ['fanout', 'bun', 'detection', 'memory', 'upstream', 'trigger', 'persist', 'feed', 'tracing', 'startup', 'crossproc', 'processes']
const wanted = process.argv.slice(2).filter((a) => a in CASES)
const started = Date.now()
const load = () => { try { return execSync('cat /proc/loadavg').toString().trim() } catch { return '?' } }
console.log(`runrelay bench: node ${process.version}, ${cpus().length} cpus (${cpus()[0]?.model}), load ${load()}, rounds ${ROUNDS}, scale ${SCALE}`)
for (const name of wanted.length ? wanted : DEFAULT) {
  const t = Date.now()
  try {
    await CASES[name]!()
  } catch (err) {
    console.error(`case ${name} failed: ${(err as Error).stack ?? err}`)
    details[`${name}_error`] = String(err)
  }
  console.log(`  (${name}: ${((Date.now() - t) / 1000).toFixed(1)} s, load ${load()})`)
}

console.log('\n| case | metric | runrelay | baseline | ratio | goal | met |\n|---|---|---|---|---|---|---|')
for (const r of rows) console.log(`| ${r.case} | ${r.metric} | ${fmt(r.runrelay)} ${r.unit} | ${fmt(r.baseline)} ${r.unit} | ${r.ratio.toFixed(2)}× | ${r.goal} | ${r.met ? 'yes' : '**no**'} |`)
const wk = details.workers as any
if (wk) console.log(`\nworkers (indicative, wrangler dev, no baseline): ${wk.subs} subs, ${wk.delivered}/${wk.expected} delivered at ${fmt(wk.deliveredPerSec)} ev/s, workerd CPU ${fmt(wk.cpuUsPerDelivered)} µs per delivered event (Worker + objects ${fmt(wk.workerCpuUsPerDelivered)}, wrangler's proxy ${fmt(wk.proxyCpuUsPerDelivered)}), event at → received p50 ${fmt(wk.latencyFromEventAt.p50)} ms, p99 ${fmt(wk.latencyFromEventAt.p99)} ms`)
const out = fileURLToPath(new URL('./results.json', import.meta.url))
writeFileSync(out, JSON.stringify({ at: new Date().toISOString(), node: process.version, cpus: cpus().length, rounds: ROUNDS, scale: SCALE, totalSeconds: (Date.now() - started) / 1000, rows, details }, null, 2) + '\n')
console.log(`\nwrote ${out} (${((Date.now() - started) / 1000).toFixed(0)} s)`)
process.exit(rows.length || details.workers || details.workersFanout || details.workersWatch || (details.figures && !details.figures_error) ? 0 : 1)
