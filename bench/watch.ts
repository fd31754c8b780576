/**
 * `npm run bench -- watch [--quick]`: watch capacity (issue 26). The built server
 * (`node dist/main.mjs`, embedded libSQL file) watches N runs of a keep-alive fake upstream on
 * loopback whose jobs report new progress on every poll, each run polled every 1 s (2 s at
 * 10,000); beside it, in the same run and against the same fake, the raw work of one poll in a
 * bare process (watch-agent.ts): a keep-alive GET and one ~300-byte INSERT into a libSQL file
 * in WAL, (a) one transaction per row, (b) one per event-loop turn (group commit).
 *
 * Reported per size: polls/s achieved vs asked, CPU per poll (process CPU / polls, read from
 * /proc for runrelay and inside the raw agent), poll lag p50/p99 (seen by the upstream: gap
 * between two polls of a job minus the interval), RSS per run in flight; once: idle CPU (no
 * runs), trigger throughput and p99 on an idle process and with the largest 1 s size in flight
 * (concurrency 50), and two processes on one database file. BENCH_WATCH_PROF=<dir> runs the
 * server under --cpu-prof, BENCH_WATCH_SIZES=2000:1000 measures other sizes (runs:interval ms), BENCH_WATCH_DIST=<dir> another build. Each figure is printed with the load average at the time.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startAgent, sleep, type Agent, type RowFn } from './rpc.ts'


const ROOT_KEY = 'rr_bench_root_key_0123456789abcdef'
/** The server under test: dist/main.mjs, built from the working tree by the case; BENCH_WATCH_DIST=<dir> runs another build (e.g. of an earlier commit) instead. */
const DIST = process.env.BENCH_WATCH_DIST ? join(process.env.BENCH_WATCH_DIST, 'main.mjs') : fileURLToPath(new URL('../dist/main.mjs', import.meta.url))
const HZ = 100 // USER_HZ: /proc/<pid>/stat counts CPU in 1/100 s on Linux
/** Where the databases go (BENCH_WATCH_DIR, e.g. /dev/shm to keep a shared disk's fsync queue out of a comparison; default the OS temp dir). */
const DB_DIR = process.env.BENCH_WATCH_DIR ?? tmpdir()
const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')

/** CPU (ms) and RSS (bytes) of another process, from /proc. */
function procCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return ((Number(f[11]) + Number(f[12])) * 1000) / HZ
}
function procRss(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m ? Number(m[1]) * 1024 : NaN
}
const freePort = () => new Promise<number>((resolve, reject) => {
  const s = createServer()
  s.once('error', reject)
  s.listen(0, '127.0.0.1', () => { const p = (s.address() as { port: number }).port; s.close(() => resolve(p)) })
})

/**
 * BENCH_WATCH_HEAP=<dir>: a V8 heap snapshot of the server (SIGUSR2, written into <dir>, its
 * working directory) with no runs and again after the window; compare them with
 * `npx tsx bench/heapdiff.ts <before> <after> <runs>`.
 */
async function heapSnapshot(pid: number, label: string): Promise<void> {
  const dir = process.env.BENCH_WATCH_HEAP
  if (!dir) return
  const { readdirSync, statSync } = await import('node:fs')
  const count = () => readdirSync(dir).filter((f) => f.endsWith('.heapsnapshot')).length
  const n = count()
  process.kill(pid, 'SIGUSR2')
  // Written when the file exists and its size stops growing.
  for (let last = -1; ;) {
    await sleep(1000)
    const files = readdirSync(dir).filter((f) => f.endsWith('.heapsnapshot')).map((f) => join(dir, f)).sort((x, y) => statSync(x).mtimeMs - statSync(y).mtimeMs)
    if (count() > n) { const size = statSync(files.at(-1)!).size; if (size === last && size > 0) { console.log(`  heap snapshot (${label}): ${files.at(-1)}`); return } last = size }
  }
}

/** One `node dist/main.mjs` on `dataDir`. */
interface Server { url: string; pid: number; proc: ChildProcess; stop(): Promise<void> }
/** `env` overrides the bench's settings (undefined: the server's default, e.g. the per-key rate limit the bench turns off). */
async function startServer(dataDir: string, name: string, env: Record<string, string | undefined> = {}): Promise<Server> {
  const port = await freePort()
  const prof = process.env.BENCH_WATCH_PROF
  // BENCH_WATCH_SOURCE=1: the TypeScript source through tsx instead of the bundle (a profile then names files and functions).
  const entry = process.env.BENCH_WATCH_SOURCE ? ['--import', 'tsx', fileURLToPath(new URL('../src/runtime/node/main.ts', import.meta.url))] : [DIST]
  const heap = process.env.BENCH_WATCH_HEAP
  const proc = spawn(process.execPath, [...(prof ? ['--cpu-prof', `--cpu-prof-dir=${prof}`, `--cpu-prof-name=watch-${name}-${Date.now()}.cpuprofile`] : []), ...(heap ? ['--heapsnapshot-signal=SIGUSR2'] : []), ...entry], {
    cwd: heap ?? undefined,
    env: Object.fromEntries(Object.entries({
      ...process.env, PORT: String(port), HOST: '127.0.0.1', RUNRELAY_DATA_DIR: dataDir, RUNRELAY_ROOT_KEY: ROOT_KEY, RUNRELAY_ALLOW_PRIVATE_NETWORK: '1',
      RUNRELAY_LOG: 'silent', RUNRELAY_RATE_LIMIT_PER_MINUTE: '0', ...(process.env.BENCH_WATCH_ENV ? JSON.parse(process.env.BENCH_WATCH_ENV) : {}), ...env,
    }).filter((e): e is [string, string] => e[1] !== undefined)),
    stdio: ['ignore', 'inherit', 'inherit'],
  })
  const url = `http://127.0.0.1:${port}`
  const deadline = Date.now() + 30_000
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`${name} exited with ${proc.exitCode}`)
    try { if ((await fetch(`${url}/healthz`)).ok) break } catch { /* not yet */ }
    if (Date.now() > deadline) { proc.kill('SIGKILL'); throw new Error(`${name} did not start in 30 s`) }
    await sleep(100)
  }
  return {
    url, pid: proc.pid!, proc,
    async stop() {
      if (proc.exitCode !== null) return
      const exited = new Promise((r) => proc.once('exit', r))
      proc.kill('SIGTERM')
      const t = setTimeout(() => proc.kill('SIGKILL'), 15_000)
      await exited
      clearTimeout(t)
    },
  }
}

async function api(base: string, key: string, method: string, path: string, body?: unknown) {
  const res = await fetch(base + path, { method, headers: { authorization: `Bearer ${key}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) }, body: body === undefined ? undefined : JSON.stringify(body) })
  const json: any = await res.json().catch(() => null)
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`)
  return json
}

/** Tenant, `http` connection to the fake, a watched workflow (fixed interval) and a one-poll workflow (for trigger load). */
async function setup(s: Server, upstreamUrl: string, intervalMs: number) {
  const t = await api(s.url, ROOT_KEY, 'POST', '/v1/tenants', { name: 'bench' })
  const key: string = t.key.key
  const conn = await api(s.url, key, 'POST', '/v1/connections', { name: 'fake', provider: 'http', base_url: upstreamUrl })
  // The job's body is the run's input ({"script":"watch"} or {"script":"done"}): a `{{script}}` variable was never set, so the one-shot runs never completed and kept being polled.
  const config = { trigger: { method: 'POST', path: '/jobs', body: '{{input}}' }, upstreamIdPath: 'id', status: { method: 'GET', path: '/jobs/{{upstream_id}}' }, statusPath: 'status', progressPath: 'progress', messagePath: 'message', resultPath: 'result' }
  const wf = (script: string) => api(s.url, key, 'POST', '/v1/workflows', { name: `bench-${script}`, connection_id: conn.id, upstream_workflow_id: 'jobs', config, input_template: { script }, poll_policy: { first_interval_ms: intervalMs, max_interval_ms: intervalMs } })
  return { key, watched: (await wf('watch')).id as string, oneShot: (await wf('done')).id as string }
}

/** `count` triggers at `concurrency`, spread over `servers`: throughput and latency percentiles. */
async function triggers(servers: Array<{ url: string }>, key: string, workflowId: string, count: number, concurrency: number) {
  const lat: number[] = []
  let next = 0, errors = 0
  const t0 = performance.now()
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < count) {
      const i = next++
      const s = servers[i % servers.length]!
      const t = performance.now()
      try { await api(s.url, key, 'POST', `/v1/workflows/${workflowId}/runs`, { variables: {} }) } catch { errors++ }
      lat.push(performance.now() - t)
    }
  }))
  const ms = performance.now() - t0
  lat.sort((a, b) => a - b)
  return { count, errors, ms, perSec: (count * 1000) / ms, p50: lat[Math.floor(lat.length * 0.5)]!, p99: lat[Math.min(lat.length - 1, Math.floor(lat.length * 0.99))]! }
}

interface Size { runs: number; intervalMs: number }

/** The server's memory split from its /metrics (prom-client's process metrics): V8 heap used and total, external (Buffers, native), in bytes. */
async function memorySplit(s: Server): Promise<{ heapUsed: number; heapTotal: number; external: number }> {
  const text = await (await fetch(`${s.url}/metrics`, { headers: { authorization: `Bearer ${ROOT_KEY}` } })).text()
  const value = (name: string) => Number(new RegExp(`^${name} (\\S+)`, 'm').exec(text)?.[1] ?? NaN)
  return { heapUsed: value('nodejs_heap_size_used_bytes'), heapTotal: value('nodejs_heap_size_total_bytes'), external: value('nodejs_external_memory_bytes') }
}

/** Measure one window: polls and lags seen by the upstream, CPU of the watcher(s). */
async function window(up: Agent, cpu: () => Promise<number> | number, intervalMs: number, seconds: number) {
  await up.call('mark', { intervalMs })
  const c0 = await cpu()
  await sleep(seconds * 1000)
  const c1 = await cpu()
  const w = await up.call('window')
  return { ...w, cpuMs: c1 - c0, cpuUsPerPoll: ((c1 - c0) * 1000) / w.polls, cpuCores: (c1 - c0) / (w.seconds * 1000), load: loadavg() }
}

export async function watch(row: RowFn, details: Record<string, unknown>, quick: boolean): Promise<void> {
  const sizes: Size[] = quick ? [{ runs: 200, intervalMs: 1000 }, { runs: 500, intervalMs: 1000 }, { runs: 1000, intervalMs: 2000 }] : [{ runs: 100, intervalMs: 1000 }, { runs: 1000, intervalMs: 1000 }, { runs: 5000, intervalMs: 1000 }, { runs: 10_000, intervalMs: 2000 }]
  const WARM_S = quick ? 3 : 5, MEASURE_S = quick ? 6 : 15, IDLE_S = quick ? 10 : 20, IDLE_SETTLE_S = 45, TRIGGERS = quick ? 300 : 2000
  const extraSize = process.env.BENCH_WATCH_SIZES // e.g. "2000:1000" (runs:interval, comma-separated) instead of the default sizes
  if (extraSize) sizes.splice(0, sizes.length, ...extraSize.split(',').map((x) => { const [r, i] = x.split(':').map(Number); return { runs: r!, intervalMs: i ?? 1000 } }))
  console.log(`watch: sizes ${sizes.map((s) => `${s.runs}@${s.intervalMs}ms`).join(', ')}; warm-up ${WARM_S} s, window ${MEASURE_S} s; load ${loadavg()}`)
  if (!process.env.BENCH_WATCH_DIST && !process.env.BENCH_WATCH_SOURCE) { const { buildServer } = await import('../scripts/build.mjs' as string); await buildServer() }
  const up = startAgent('./watch-agent.ts', 'watch-upstream')
  const out: any = { sizes: [] }
  details.watch = out
  try {
    const { url: upstreamUrl } = await up.call('start')
    for (const size of sizes) {
      const asked = (size.runs * 1000) / size.intervalMs
      const res: any = { ...size, asked }
      // (a), (b): the raw baselines.
      for (const mode of ['row', 'group'] as const) {
        const raw = startAgent('./watch-agent.ts', `watch-raw-${mode}`)
        try {
          await raw.call('start', { url: upstreamUrl, runs: size.runs, intervalMs: size.intervalMs, mode }, 300_000)
          await sleep(WARM_S * 1000)
          res[mode] = await window(up, async () => raw.call('cpuSince'), size.intervalMs, MEASURE_S)
          await raw.call('stop')
        } finally {
          await raw.stop()
          await up.call('clear')
        }
        console.log(`  ${size.runs} runs @ ${size.intervalMs} ms, raw ${mode === 'row' ? 'one transaction per row' : 'group commit'}: ${JSON.stringify(res[mode])}`)
      }
      // runrelay.
      const dataDir = mkdtempSync(join(DB_DIR, 'runrelay-bench-watch-'))
      const s = await startServer(dataDir, `${size.runs}`)
      try {
        const ids = await setup(s, upstreamUrl, size.intervalMs)
        await sleep(2000)
        const first = size === sizes[0]
        if (first) {
          // Idle: no runs at all (every timer that runs whatever the load). Measured once V8's
          // memory reducer is done: ~15–25 s after start-up's allocations stop it runs three full
          // GCs, once (--trace-gc: 40 ms of CPU; a 10 s window holding them reads 1.0–1.7%, and
          // after a 20 s settle they still fell in the window of one server or the other in two
          // runs of three: a CPU profile put them 24–25 s after start), hence 45 s.
          // Beside it, in the same window, a server with the default configuration: its per-key
          // rate limit (off in this bench) keeps a heartbeat in the database once a second.
          const idleDir = mkdtempSync(join(DB_DIR, 'runrelay-bench-idle-'))
          const d = await startServer(idleDir, 'idle-default', { RUNRELAY_RATE_LIMIT_PER_MINUTE: undefined })
          try {
            await sleep(IDLE_SETTLE_S * 1000)
            const c0 = procCpuMs(s.pid), d0 = procCpuMs(d.pid), t0 = performance.now()
            await sleep(IDLE_S * 1000)
            const ms = performance.now() - t0
            out.idle = { cpuPctOfCore: (100 * (procCpuMs(s.pid) - c0)) / ms, rss: procRss(s.pid), load: loadavg() }
            out.idleDefault = { cpuPctOfCore: (100 * (procCpuMs(d.pid) - d0)) / ms, rss: procRss(d.pid), load: loadavg() }
          } finally {
            await d.stop()
            rmSync(idleDir, { recursive: true, force: true })
          }
          console.log(`  idle (no runs, ${IDLE_S} s after ${IDLE_SETTLE_S} s settling): rate limit off ${JSON.stringify(out.idle)}, default configuration ${JSON.stringify(out.idleDefault)}`)
        }
        // Trigger throughput on the idle process (the baseline of the under-load figure), warm: a
        // fresh process runs its trigger path cold (V8 compiles and tiers up its code, the write
        // connection prepares a statement per group size), and its first burst of 2,000 measured
        // ~500/s with p99 ~1 s where the same burst again took ~1,000/s with p99 ~90 ms; the first
        // 50 requests, all in flight at once, waited 0.3–1.3 s. The cold burst is reported as info.
        // Both go before the memory baseline: what they leave (compiled code, caches) is no run's.
        const biggest1s = sizes.filter((x) => x.intervalMs === 1000).at(-1)
        if (size === biggest1s) {
          res.triggersCold = await triggers([s], ids.key, ids.oneShot, TRIGGERS, 50)
          res.triggersCold.load = loadavg()
          await sleep(2000)
          res.triggersIdle = await triggers([s], ids.key, ids.oneShot, TRIGGERS, 50)
          res.triggersIdle.load = loadavg()
          await sleep(2000)
        }
        await heapSnapshot(s.pid, `${size.runs} runs: before`)
        const rss0 = procRss(s.pid)
        const mem0 = await memorySplit(s)
        const tc = performance.now()
        await triggers([s], ids.key, ids.watched, size.runs, 50)
        res.createSeconds = (performance.now() - tc) / 1000
        await sleep(WARM_S * 1000)
        res.runrelay = await window(up, () => procCpuMs(s.pid), size.intervalMs, MEASURE_S)
        res.runrelay.rss = procRss(s.pid)
        res.runrelay.rssPerRunKiB = (res.runrelay.rss - rss0) / size.runs / 1024
        // Where the RSS per run goes: live JS objects (heap used), heap kept by V8 (heap total), Buffers and native memory (external), the rest (code, sockets' native state, libSQL, malloc arenas).
        const mem1 = await memorySplit(s)
        await heapSnapshot(s.pid, `${size.runs} runs: after the window`)
        res.runrelay.perRunKiB = Object.fromEntries((['heapUsed', 'heapTotal', 'external'] as const).map((k) => [k, Math.round((mem1[k] - mem0[k]) / size.runs / 102.4) / 10]))
        console.log(`  ${size.runs} runs @ ${size.intervalMs} ms, runrelay (created in ${res.createSeconds.toFixed(1)} s): ${JSON.stringify(res.runrelay)}`)
        if (size === biggest1s) {
          res.triggersLoaded = await triggers([s], ids.key, ids.oneShot, TRIGGERS, 50)
          res.triggersLoaded.load = loadavg()
          console.log(`  triggers, ${TRIGGERS} at concurrency 50: fresh process ${JSON.stringify(res.triggersCold)}, idle (warm) ${JSON.stringify(res.triggersIdle)}, with ${size.runs} runs in flight ${JSON.stringify(res.triggersLoaded)}`)
        }
      } finally {
        await s.stop()
        rmSync(dataDir, { recursive: true, force: true })
        await up.call('clear')
      }
      out.sizes.push(res)
      const g = res.group, rr = res.runrelay
      const label = `${size.runs} runs @ ${size.intervalMs / 1000} s`
      row({ case: 'watch', metric: `CPU per poll vs raw group commit, ${label} (load ${rr.load})`, runrelay: rr.cpuUsPerPoll, baseline: g.cpuUsPerPoll, unit: 'µs', goal: '≤ 1.5×', limit: 1.5 })
      row({ case: 'watch', metric: `CPU per poll vs raw one transaction per row, ${label} (info)`, runrelay: rr.cpuUsPerPoll, baseline: res.row.cpuUsPerPoll, unit: 'µs', goal: 'info', limit: Infinity })
      row({ case: 'watch', metric: `polls/s achieved (asked ${asked}) vs raw group commit, ${label}`, runrelay: rr.perSec, baseline: g.perSec, unit: 'polls/s', goal: `≥ 0.95 of asked`, limit: 0, higherIsBetter: true, met: rr.perSec / asked >= 0.95 })
      row({ case: 'watch', metric: `poll lag p50 vs raw group commit, ${label} (info)`, runrelay: rr.lagP50, baseline: g.lagP50, unit: 'ms', goal: 'info', limit: Infinity })
      row({ case: 'watch', metric: `poll lag p99 vs raw group commit, ${label}`, runrelay: rr.lagP99, baseline: g.lagP99, unit: 'ms', goal: '≤ 250 ms', limit: Infinity, met: rr.lagP99 <= 250 })
      row({ case: 'watch', metric: `RSS per run in flight, ${label} (baseline: the 10 KB goal)`, runrelay: rr.rssPerRunKiB, baseline: 10_000 / 1024, unit: 'KiB', goal: '≤ 10 KB', limit: 1 })
      if (res.triggersLoaded) {
        const tl = res.triggersLoaded, ti = res.triggersIdle
        row({ case: 'watch', metric: `triggers/s with ${size.runs} runs in flight vs idle process (${TRIGGERS}, concurrency 50)`, runrelay: tl.perSec, baseline: ti.perSec, unit: '/s', goal: '≥ 1,000/s', limit: 0, higherIsBetter: true, met: tl.perSec >= 1000 })
        row({ case: 'watch', metric: `trigger p99 with ${size.runs} runs in flight vs idle process`, runrelay: tl.p99, baseline: ti.p99, unit: 'ms', goal: '≤ 100 ms', limit: Infinity, met: tl.p99 <= 100 })
        const tc = res.triggersCold
        row({ case: 'watch', metric: `trigger p99, first burst on a fresh process vs the same burst warm (info: ${Math.round(tc.perSec)} vs ${Math.round(ti.perSec)} /s)`, runrelay: tc.p99, baseline: ti.p99, unit: 'ms', goal: 'info', limit: Infinity })
      }
    }
    if (out.idle) {
      row({ case: 'watch', metric: `idle CPU, no runs, default configuration (% of a core; baseline: the goal; load ${out.idleDefault.load})`, runrelay: out.idleDefault.cpuPctOfCore, baseline: 0.5, unit: '%', goal: '≤ 0.5%', limit: 1 })
      row({ case: 'watch', metric: 'idle CPU, no runs, per-key rate limit off as in the rest of this case (% of a core; info)', runrelay: out.idle.cpuPctOfCore, baseline: 0.5, unit: '%', goal: 'info', limit: Infinity })
    }
    // Two processes on one database file, at the largest 1 s size: achieved polls against one process.
    const two = sizes.filter((x) => x.intervalMs === 1000).at(-1)!
    const one = out.sizes.find((r: any) => r.runs === two.runs && r.intervalMs === two.intervalMs)
    if (one && !process.env.BENCH_WATCH_NO_PAIR) {
      const dataDir = mkdtempSync(join(DB_DIR, 'runrelay-bench-watch2-'))
      const a = await startServer(dataDir, 'pair-a')
      const b = await startServer(dataDir, 'pair-b').catch(async (e) => { await a.stop(); throw e })
      try {
        const ids = await setup(a, upstreamUrl, two.intervalMs)
        await triggers([a, b], ids.key, ids.watched, two.runs, 50)
        await sleep(WARM_S * 1000)
        const w = await window(up, () => procCpuMs(a.pid) + procCpuMs(b.pid), two.intervalMs, MEASURE_S)
        out.pair = { ...w, runs: two.runs }
        console.log(`  2 processes, ${two.runs} runs @ ${two.intervalMs} ms: ${JSON.stringify(out.pair)}`)
        row({ case: 'watch', metric: `2 processes on one file vs 1: polls/s, ${two.runs} runs @ 1 s (load ${w.load}; info)`, runrelay: w.perSec, baseline: one.runrelay.perSec, unit: 'polls/s', goal: 'info', limit: 0, higherIsBetter: true })
      } finally {
        await Promise.allSettled([a.stop(), b.stop()])
        rmSync(dataDir, { recursive: true, force: true })
      }
    }
  } finally {
    await up.stop()
  }
}
