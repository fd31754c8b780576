/**
 * Start-up case: cold start to a healthy /healthz and resident memory once healthy, for
 * the compiled server (`npm run start:prod`, node dist/main.mjs) beside the tsx start
 * (`npm start`) and a bare node:http server (the floor), in the same run. RSS is summed over
 * the whole process tree (tsx runs node under a parent process). Goals: ≤ 300 ms, ≤ 100 MB.
 */
import type { RowFn } from './rpc.ts'
import { spawn, execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { descendants, freePort, signalGroup, waitHealthy } from '../test/helpers/child.ts'


const root = fileURLToPath(new URL('..', import.meta.url))
const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]! }

/** RSS in MB and CPU time in ms (user + system) of a process and all its live descendants (Linux /proc). */
function treeUsage(pid: number): { rssMb: number; cpuMs: number } {
  let kb = 0, ticks = 0
  for (const p of [pid, ...descendants(pid)]) {
    try {
      kb += Number(readFileSync(`/proc/${p}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)?.[1] ?? 0)
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1]!.split(' ')
      ticks += Number(stat[11]) + Number(stat[12])
    } catch { /* gone */ }
  }
  return { rssMb: kb / 1024, cpuMs: ticks * 10 } // USER_HZ is 100 on Linux
}

/** Spawn one server, time it to a 200 from /healthz (30 s cap), read its tree's RSS, kill it. */
async function coldStart(cmd: string[]): Promise<{ ms: number; rssMb: number; cpuMs: number }> {
  // Picked by the OS now: a fixed range can collide with other programs' ports (and fail the start).
  const port = await freePort()
  const dataDir = mkdtempSync(join(tmpdir(), 'runrelay-bench-start-'))
  const t0 = performance.now()
  const proc = spawn(cmd[0]!, cmd.slice(1), {
    cwd: root, detached: true, stdio: 'ignore',
    env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', RUNRELAY_DATA_DIR: dataDir, RUNRELAY_LOG: 'silent', RUNRELAY_ROOT_KEY: 'rr_bench_root_key_0123456789abcdef' },
  })
  const exited = new Promise((r) => proc.once('exit', r))
  try {
    // Polled every 2 ms: the figure is the time to the first healthy answer.
    if (!(await waitHealthy(`http://127.0.0.1:${port}`, exited, 30_000, 2))) {
      const gone = proc.exitCode ?? proc.signalCode
      throw new Error(`${cmd.join(' ')}: ${gone === null ? 'not healthy within 30 s' : `exited (${gone}) before it was healthy`}`)
    }
    const ms = performance.now() - t0
    return { ms, ...treeUsage(proc.pid!) }
  } finally {
    signalGroup(proc, 'SIGKILL')
    await exited
    rmSync(dataDir, { recursive: true, force: true })
  }
}

/** The bench case: BENCH_START_ROUNDS (default 7) alternating cold starts of each server, medians. */
export async function startup(row: RowFn, details: Record<string, unknown>) {
  const rounds = Math.max(1, Number(process.env.BENCH_START_ROUNDS ?? 7))
  execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'ignore' })
  const bare = join(mkdtempSync(join(tmpdir(), 'runrelay-bench-bare-')), 'bare.mjs')
  writeFileSync(bare, "import http from 'node:http'\nhttp.createServer((q, s) => s.end('ok')).listen(Number(process.env.PORT), '127.0.0.1')\n")
  const servers = {
    dist: [process.execPath, 'dist/main.mjs'],
    tsx: [process.execPath, join(root, 'node_modules/tsx/dist/cli.mjs'), 'src/runtime/node/main.ts'],
    bare: [process.execPath, bare],
  }
  const runs: Record<string, { ms: number; rssMb: number; cpuMs: number }[]> = { dist: [], tsx: [], bare: [] }
  console.log(`start-up: ${rounds} cold starts each of node dist/main.mjs, tsx src/runtime/node/main.ts and a bare node:http server`)
  for (let i = 0; i < rounds; i++) {
    for (const [name, cmd] of Object.entries(servers)) runs[name]!.push(await coldStart(cmd))
  }
  const m = (name: string, k: 'ms' | 'rssMb' | 'cpuMs') => median(runs[name]!.map((r) => r[k]))
  details.startup = Object.fromEntries(Object.entries(runs).map(([k, v]) => [k, { msMedian: m(k, 'ms'), rssMbMedian: m(k, 'rssMb'), cpuMsMedian: m(k, 'cpuMs'), runs: v }]))
  const note = `dist ${m('dist', 'ms').toFixed(0)} ms / ${m('dist', 'rssMb').toFixed(0)} MB; goal ≤ 300 ms, ≤ 100 MB`
  row({ case: 'startup', metric: 'cold start to /healthz, dist vs tsx', runrelay: m('dist', 'ms'), baseline: m('tsx', 'ms'), goal: '≤ 0.5× tsx', unit: 'ms', limit: 0.5, note })
  row({ case: 'startup', metric: 'CPU to /healthz, dist vs tsx', runrelay: m('dist', 'cpuMs'), baseline: m('tsx', 'cpuMs'), goal: '≤ 0.5× tsx', unit: 'ms', limit: 0.5, note })
  row({ case: 'startup', metric: 'RSS when healthy, dist vs tsx', runrelay: m('dist', 'rssMb'), baseline: m('tsx', 'rssMb'), goal: '≤ 0.6× tsx', unit: 'MB', limit: 0.6, note })
  row({ case: 'startup', metric: 'cold start to /healthz, dist vs bare node:http', runrelay: m('dist', 'ms'), baseline: m('bare', 'ms'), goal: '≤ 3× bare', unit: 'ms', limit: 3, note })
  row({ case: 'startup', metric: 'RSS when healthy, dist vs bare node:http', runrelay: m('dist', 'rssMb'), baseline: m('bare', 'rssMb'), goal: '≤ 2.5× bare', unit: 'MB', limit: 2.5, note })
  const abs = { ms: m('dist', 'ms'), rssMb: m('dist', 'rssMb') }
  console.log(`  startup CPU to healthy: dist ${m('dist', 'cpuMs').toFixed(0)} ms, tsx ${m('tsx', 'cpuMs').toFixed(0)} ms, bare ${m('bare', 'cpuMs').toFixed(0)} ms (less load-sensitive than wall time)`)
  console.log(`  startup absolute: dist ${abs.ms.toFixed(0)} ms (goal ≤ 300) ${abs.ms <= 300 ? 'met' : 'MISSED'}, ${abs.rssMb.toFixed(0)} MB (goal ≤ 100) ${abs.rssMb <= 100 ? 'met' : 'MISSED'}`)
}
