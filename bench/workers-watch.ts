/**
 * `npm run bench -- workers-watch` (opt-in): the per-run cost of watching on Workers. N runs in
 * local workerd (Miniflare, bench/workerd.ts), each polled every POLL_MS by its run object's alarm
 * (the shipped bundle: alarm, upstream GET, Durable Object storage, libSQL flush), beside a bare
 * alarm loop in another workerd: one Durable Object per job whose alarm does the GET, one
 * SQLite INSERT of the answer in its own storage and sets the next alarm. Both poll the same fake
 * upstream, whose every answer reports new progress (so every runrelay poll writes an event).
 *
 * Per side, after a warm-up: polls the upstream received in WINDOW_MS (against the asked
 * N × WINDOW_MS / POLL_MS) and workerd CPU (utime + stime of the workerd processes started here)
 * per poll. The ratio runrelay / bare is the figure; absolute CPU is context.
 */
import { sleep, type RowFn } from './rpc.ts'
import { launchWorkerd, loadMiniflare } from './workerd.ts'
import { cpuSince, workerdCpu } from './workers-fanout.ts'


/** The bare loop: one Durable Object per job; its alarm polls and stores the answer. */
const BARE_LOOP = `
export class Loop {
  constructor(state, env) {
    this.state = state; this.env = env
    state.storage.sql.exec('CREATE TABLE IF NOT EXISTS obs (id INTEGER PRIMARY KEY, at INTEGER, body TEXT)')
  }
  async fetch(req) {
    const u = new URL(req.url)
    await this.state.storage.put('job', { url: u.searchParams.get('poll'), ms: Number(u.searchParams.get('ms')) })
    await this.state.storage.setAlarm(Date.now() + Number(u.searchParams.get('ms')))
    return new Response('ok')
  }
  async alarm() {
    const job = await this.state.storage.get('job')
    if (!job) return
    try {
      const res = await fetch(job.url)
      this.state.storage.sql.exec('INSERT INTO obs (at, body) VALUES (?, ?)', Date.now(), await res.text())
    } finally {
      await this.state.storage.setAlarm(Date.now() + job.ms)
    }
  }
}
export default { fetch(req, env) { return env.LOOP.get(env.LOOP.idFromName(new URL(req.url).searchParams.get('poll'))).fetch(req) } }
`

/** A bare-loop workerd (same Miniflare as the runrelay one). */
async function launchBareLoop(): Promise<{ url: string; stop(): Promise<void> }> {
  const { Miniflare, convertV4MiniflareOptions } = loadMiniflare()
  const mf = new Miniflare(convertV4MiniflareOptions({
    host: '127.0.0.1', port: 0, cf: false,
    workers: [{ name: 'bare-loop', modules: true, script: BARE_LOOP, compatibilityDate: '2025-01-01', durableObjects: { LOOP: { className: 'Loop', useSQLite: true } } }],
  }))
  const url = (await mf.ready).origin
  return { url, stop: () => mf.dispose() }
}

/** A script of `steps` answers, each with new progress (the last repeats). */
const progressing = (steps: number) => Array.from({ length: steps }, (_, k) => ({ status: 'running', progress: (k + 1) / (steps + 1) }))

/** Polls received by the fake since `before` (a map of job id → polls). */
const pollsSince = (jobs: Map<string, { polls: number }>, before: Map<string, number>) => {
  let n = 0
  for (const [id, j] of jobs) n += j.polls - (before.get(id) ?? 0)
  return n
}
const snapshot = (jobs: Map<string, { id: string; polls: number }>) => new Map([...jobs.values()].map((j) => [j.id, j.polls]))

async function measureSide(side: 'runrelay' | 'bare', N: number, POLL_MS: number, WINDOW_MS: number) {
  const { startGenericUpstream, genericWorkflowConfig } = await import('../test/fakes/generic-upstream.ts')
  const up = await startGenericUpstream()
  const steps = Math.ceil((WINDOW_MS + 20_000) / POLL_MS) + 10
  let stop: () => Promise<void> = async () => {}
  try {
    if (side === 'runrelay') {
      const w = await launchWorkerd({ RUNRELAY_RATE_LIMIT_PER_MINUTE: '0', RUNRELAY_LOG: 'silent' })
      stop = w.stop
      const call = async (path: string, body: unknown, key: string) => {
        const res = await fetch(w.url + path, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(60_000) })
        const json = await res.json() as Record<string, any>
        if (res.status >= 300) throw new Error(`${path}: ${res.status} ${JSON.stringify(json)}`)
        return json
      }
      const key = (await call('/v1/tenants', { name: 'bench' }, w.rootKey)).key.key as string
      const conn = await call('/v1/connections', { name: 'fake', provider: 'http', base_url: up.url, config: {}, credentials: {} }, key)
      const wf = await call('/v1/workflows', { name: 'fake', connection_id: conn.id, upstream_workflow_id: 'jobs', config: genericWorkflowConfig, input_template: { script: '{{script}}' }, poll_policy: { first_interval_ms: POLL_MS, max_interval_ms: POLL_MS, deadline_ms: 3_600_000 } }, key)
      for (let i = 0; i < N; i += 20) await Promise.all(Array.from({ length: Math.min(20, N - i) }, () => call(`/v1/workflows/${wf.id}/runs`, { variables: { script: progressing(steps) } }, key)))
    } else {
      const b = await launchBareLoop()
      stop = b.stop
      for (let i = 0; i < N; i += 20) {
        await Promise.all(Array.from({ length: Math.min(20, N - i) }, async () => {
          const job = await (await fetch(`${up.url}/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ script: progressing(steps) }) })).json() as { id: string }
          const res = await fetch(`${b.url}/?${new URLSearchParams({ poll: `${up.url}/jobs/${job.id}`, ms: String(POLL_MS) })}`)
          if (!res.ok) throw new Error(`bare loop: ${res.status} ${await res.text()}`)
        }))
      }
    }
    // Warm-up: every run triggered and polled at least once.
    const deadline = Date.now() + 60_000
    while ((up.jobs.size < N || [...up.jobs.values()].some((j) => j.polls === 0)) && Date.now() < deadline) await sleep(250)
    await sleep(2 * POLL_MS)
    const polls0 = snapshot(up.jobs)
    const cpu0 = workerdCpu()
    const t0 = performance.now()
    await sleep(WINDOW_MS)
    const cpuMs = cpuSince(cpu0)
    const seconds = (performance.now() - t0) / 1000
    const polls = pollsSince(up.jobs, polls0)
    const r = { side, runs: N, jobs: up.jobs.size, polls, pollsPerSec: polls / seconds, askedPerSec: (N * 1000) / POLL_MS, cpuMs: Math.round(cpuMs), cpuUsPerPoll: (cpuMs * 1000) / Math.max(1, polls) }
    console.log(`  ${JSON.stringify(r)}`)
    return r
  } finally {
    await stop().catch(() => {})
    await up.close()
  }
}

/** The case: the bare alarm loop and runrelay's run objects, N runs each, in the same bench run. */
export async function workersWatch(row: RowFn, details: Record<string, unknown>, n: (x: number) => number) {
  const N = Number(process.env.BENCH_WORKERS_WATCH_RUNS ?? n(200)), POLL_MS = 1_000, WINDOW_MS = Number(process.env.BENCH_WORKERS_WATCH_WINDOW_MS ?? 20_000)
  console.log(`workers-watch: ${N} runs polled every ${POLL_MS} ms in local workerd (Miniflare), runrelay's run objects vs a bare alarm loop (GET + one SQLite INSERT per poll), ${WINDOW_MS / 1000} s window`)
  const bare = await measureSide('bare', N, POLL_MS, WINDOW_MS)
  const rr = await measureSide('runrelay', N, POLL_MS, WINDOW_MS)
  details.workersWatch = { bare, runrelay: rr }
  row({ case: 'workers watch', metric: `workerd CPU per poll (${N} runs @ ${POLL_MS} ms)`, runrelay: rr.cpuUsPerPoll, baseline: bare.cpuUsPerPoll, unit: 'µs', goal: '≤ 1.5× (the local watch goal; libSQL server CPU not counted)', limit: 1.5 })
  row({ case: 'workers watch', metric: `polls/s achieved (asked ${rr.askedPerSec})`, runrelay: rr.pollsPerSec, baseline: bare.pollsPerSec, unit: 'polls/s', goal: '≥ 0.95×', limit: 0.95, higherIsBetter: true })
}
