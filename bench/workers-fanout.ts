/**
 * `npm run bench -- workers-fanout` (opt-in): one hot run's WebSocket subscribers in local
 * workerd, held by the run object alone (the baseline: RUNRELAY_RUN_SHARDS=0, today's path) and
 * by socket-holder shards it feeds (RUNRELAY_RUN_SHARDS=8, RUNRELAY_RUN_SHARD_AFTER=0), in the
 * same bench run. workerd is driven through Miniflare (bench/workerd.ts): the clients connect to
 * workerd's own socket, not through `wrangler dev`'s proxy.
 *
 * Per layout: SUBS sockets (two client agents, half each) subscribe with `after=0`; the time until
 * every one has `caught_up`; then COUNT live events at ~10/s, during which every 20th socket is
 * cut and resumes with `after=`; then the run is canceled. Per socket: every seq 1 … last exactly
 * once and in order (lost / duplicated / reordered), close 1000; event `at` → received p50/p99,
 * and per event the time by which every socket had it.
 */
import { createRequire } from 'node:module'
import { startAgent, sleep, percentile, type Agent } from './rpc.ts'
import { launchWorkerd } from './workerd.ts'

const require = createRequire(import.meta.url)

/** workerd CPU (ms) of the workerd processes this bench started: /proc/<pid>/stat utime + stime. */
export function workerdCpu(): Map<number, number> {
  const tick = 100 // USER_HZ
  const { readdirSync, readFileSync } = require('node:fs') as typeof import('node:fs')
  const procs = new Map<number, { ppid: number; comm: string; cpu: number }>()
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue
    try {
      const st = readFileSync(`/proc/${d}/stat`, 'utf8')
      const comm = st.slice(st.indexOf('(') + 1, st.lastIndexOf(')'))
      const f = st.slice(st.lastIndexOf(')') + 2).split(' ')
      procs.set(Number(d), { ppid: Number(f[1]), comm, cpu: ((Number(f[11]) + Number(f[12])) * 1000) / tick })
    } catch { /* gone */ }
  }
  const mine = (pid: number): boolean => { for (let p = pid, i = 0; p > 1 && i < 50; i++) { if (p === process.pid) return true; p = procs.get(p)?.ppid ?? 0 } return false }
  const out = new Map<number, number>()
  for (const [pid, p] of procs) if (p.comm.startsWith('workerd') && mine(pid)) out.set(pid, p.cpu)
  return out
}

/** workerd CPU (ms) spent since `before` (a workerdCpu() reading). */
export const cpuSince = (before: Map<number, number>) => { let ms = 0; for (const [pid, cpu] of workerdCpu()) ms += cpu - (before.get(pid) ?? 0); return ms }

/** A tenant, an `http` workflow on the generic fake upstream polled every `pollMs`, and one run that holds still (running, no new events). */
export async function holdingRun(w: { url: string; rootKey: string }, up: { url: string }, pollMs: number) {
  const { genericWorkflowConfig } = await import('../test/fakes/generic-upstream.ts')
  const call = async (method: string, path: string, body: unknown, key: string) => {
    const send = () => fetch(w.url + path, { method, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(60_000) })
    // A GET is retried (at most twice) when its pooled connection was reset: a keep-alive socket
    // workerd closed while thousands of WebSockets keep it busy (seen once at 5,000 subscribers).
    const res = await send()
      .catch((err) => (method === 'GET' ? sleep(200).then(send) : Promise.reject(err)))
      .catch((err) => (method === 'GET' ? sleep(1000).then(send) : Promise.reject(err)))
      .catch((err) => { throw new Error(`${method} ${path}: ${err.message} (${err.cause?.code ?? err.cause ?? ''})`) })
    const json: any = await res.json()
    if (res.status >= 300) throw new Error(`${path}: ${res.status} ${JSON.stringify(json)}`)
    return json
  }
  const t = await call('POST', '/v1/tenants', { name: 'bench' }, w.rootKey)
  const key = t.key.key as string
  const conn = await call('POST', '/v1/connections', { name: 'fake', provider: 'http', base_url: up.url, config: {}, credentials: {} }, key)
  const wf = await call('POST', '/v1/workflows', { name: 'fake', connection_id: conn.id, upstream_workflow_id: 'jobs', config: genericWorkflowConfig, input_template: { script: '{{script}}' }, poll_policy: { first_interval_ms: pollMs, max_interval_ms: pollMs, deadline_ms: 3_600_000 } }, key)
  const hold = { status: 'running', progress: 0 }
  const run = await call('POST', `/v1/workflows/${wf.id}/runs`, { variables: { script: [hold] } }, key)
  return { key, run, hold, call: (method: string, path: string, body?: unknown) => call(method, path, body, key) }
}

/** Poll `check` every 250 ms until it returns true or `timeoutMs` passes; false on timeout. */
async function until(check: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs
  while (Date.now() < end) { if (await check()) return true; await sleep(250) }
  return false
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0)

/** One layout: fresh workerd + fake upstream, SUBS sockets over AGENTS client agents; the figures. */
async function measure(layout: { name: string; shards: number }, SUBS: number, COUNT: number, POLL_MS: number, AGENTS: number) {
  const { startGenericUpstream } = await import('../test/fakes/generic-upstream.ts')
  const up = await startGenericUpstream()
  const w = await launchWorkerd({ RUNRELAY_RATE_LIMIT_PER_MINUTE: '0', RUNRELAY_HEARTBEAT_MS: '15000', RUNRELAY_RUN_SHARDS: String(layout.shards), RUNRELAY_RUN_SHARD_AFTER: '0' })
  const clients: Agent[] = Array.from({ length: AGENTS }, (_, i) => startAgent('./workers-fanout-client.ts', `fanout-client-${i}`))
  const all = <T = any>(cmd: string, args?: unknown, timeoutMs?: number): Promise<T[]> => Promise.all(clients.map((c) => c.call<T>(cmd, args, timeoutMs)))
  try {
    const { key, run, hold, call } = await holdingRun(w, up, POLL_MS)
    const headers = { authorization: `Bearer ${key}` }
    const url = `${w.url.replace(/^http/, 'ws')}/v1/runs/${run.id}/stream?after=0`
    const since = await clients[0]!.call('now')
    const cpu0 = workerdCpu()
    const per = Math.ceil(SUBS / AGENTS)
    const conns = await Promise.all(clients.map((c, i) => c.call('connect', { urls: Array(Math.max(0, Math.min(per, SUBS - i * per))).fill(url), headers, concurrency: 100 }, 600_000)))
    const open = sum(conns.map((c) => c.open))
    await until(async () => sum((await all('caughtUp', { since })).map((c) => c.n)) >= open, 300_000)
    const joined = (await all<{ n: number; ms: number[] }>('caughtUp', { since }))
    const joinMs = joined.flatMap((j) => j.ms).sort((a, b) => a - b)
    const joinCpuMs = cpuSince(cpu0)
    const history = (await call('GET', `/v1/runs/${run.id}`)).seq as number

    // COUNT live events: from the next poll on, each poll yields one run.progress.
    const job = [...up.jobs.values()][0]
    if (!job) throw new Error('the run never triggered its upstream job')
    const cpu1 = workerdCpu()
    job.script = [...Array(job.polls + 1).fill(hold), ...Array.from({ length: COUNT }, (_, k) => ({ status: 'running', progress: (k + 1) / (COUNT + 1) }))]
    const lastLive = history + COUNT
    // A third of the way in, every 20th socket is cut and resumes with after= its last seq.
    await until(async () => sum(await all<number>('have', { seq: history + Math.ceil(COUNT / 3) })) > 0, 60_000)
    const resumes = await all('dropAndResume', { every: 20, pauseMs: 500, headers }, 300_000)
    const delivered = await until(async () => sum(await all<number>('have', { seq: lastLive })) >= open, 180_000)
    const liveCpuMs = cpuSince(cpu1)
    await call('POST', `/v1/runs/${run.id}/cancel`, {})
    await until(async () => (await call('GET', `/v1/runs/${run.id}`)).finished_at != null, 30_000)
    const last = (await call('GET', `/v1/runs/${run.id}`)).seq as number
    await until(async () => sum((await all('report', { liveFrom: history + 1, last })).map((r) => r.closes['1000'] ?? 0)) >= open, 120_000)
    const reps = await all('report', { liveFrom: history + 1, last: lastLive })
    const end = await all('report', { liveFrom: last + 1, last })
    const lat = reps.flatMap((r) => r.latencies as number[]).sort((a, b) => a - b)
    // Per live event: the time after its `at` by which every socket (in both agents) had it.
    const allBy: number[] = []
    for (let seq = history + 1; seq <= lastLive; seq++) allBy.push(Math.max(...reps.map((r) => r.allBy[seq] ?? Infinity)))
    allBy.sort((a, b) => a - b)
    const r = {
      layout: layout.name, subs: open, failed: sum(conns.map((c) => c.failed)), connectMs: Math.round(Math.max(...conns.map((c) => c.ms))),
      caughtUp: joinMs.length, caughtUpP50Ms: Math.round(percentile(joinMs, 50)), caughtUpMs: Math.round(joinMs[joinMs.length - 1] ?? NaN),
      history, events: COUNT, lastSeq: last, allDelivered: delivered,
      lost: sum(end.map((e) => e.lost)), duplicated: sum(end.map((e) => e.duplicated)), reordered: sum(end.map((e) => e.reordered)), socketsWithLoss: sum(end.map((e) => e.socketsWithLoss)),
      resumed: sum(end.map((e) => e.resumed)), resumedClean: sum(end.map((e) => e.resumedClean)), resumeFailed: sum(resumes.map((x) => x.failed)),
      closes: end.reduce((acc: Record<string, number>, e) => { for (const [k, v] of Object.entries(e.closes as Record<string, number>)) acc[k] = (acc[k] ?? 0) + v; return acc }, {}),
      latency: { p50: percentile(lat, 50), p99: percentile(lat, 99), max: lat[lat.length - 1], n: lat.length },
      everySocketBy: { p50: percentile(allBy, 50), max: allBy[allBy.length - 1] },
      workerdCpu: { joinMs: Math.round(joinCpuMs), liveMs: Math.round(liveCpuMs), liveUsPerDelivery: (liveCpuMs * 1000) / Math.max(1, lat.length) },
    }
    console.log(`  ${JSON.stringify(r)}`)
    return r
  } finally {
    await Promise.allSettled(clients.map((c) => c.stop()))
    await w.stop()
    await up.close()
  }
}

/** The case: the baseline layout and the sharded one in the same bench run, with the ratios. */
export async function workersFanout(details: Record<string, unknown>, n: (x: number) => number) {
  const SUBS = n(5000), COUNT = Math.max(10, n(50)), POLL_MS = 100
  const SHARDS = Number(process.env.BENCH_FANOUT_SHARDS ?? 8), AGENTS = 2
  console.log(`workers-fanout: ${SUBS} WebSocket subscribers of one run in local workerd (Miniflare, no wrangler proxy), run object alone vs ${SHARDS} shards, ${COUNT} events at ~${1000 / POLL_MS}/s, ${AGENTS} client processes`)
  // BENCH_FANOUT_LAYOUTS=shards runs the sharded layout alone (no baseline: for probing sizes).
  const layouts = [{ name: 'run object', shards: 0 }, { name: `${SHARDS} shards`, shards: SHARDS }].filter((l) => process.env.BENCH_FANOUT_LAYOUTS !== 'shards' || l.shards)
  const out: Record<string, any> = {}
  for (const layout of layouts) {
    const key = layout.shards ? 'sharded' : 'baseline'
    try {
      out[key] = await measure(layout, SUBS, COUNT, POLL_MS, AGENTS)
    } catch (err) {
      // One layout failing still lets the other report.
      console.error(`  ${layout.name} failed: ${(err as Error).stack ?? err}`)
      out[key] = { layout: layout.name, error: String((err as Error).message) }
    }
  }
  details.workersFanout = out
  const b = out.baseline, s = out.sharded
  if (b?.subs && s?.subs) {
    const ratios = { caughtUp: s.caughtUpMs / b.caughtUpMs, p50: s.latency.p50 / b.latency.p50, p99: s.latency.p99 / b.latency.p99, everySocketByMax: s.everySocketBy.max / b.everySocketBy.max }
    out.ratios = ratios
    console.log(`  ratios (shards / run object): caught up ${ratios.caughtUp.toFixed(2)}×, p50 ${ratios.p50.toFixed(2)}×, p99 ${ratios.p99.toFixed(2)}×, every socket has an event (max) ${ratios.everySocketByMax.toFixed(2)}×`)
  }
}
