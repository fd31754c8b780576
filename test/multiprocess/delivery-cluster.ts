// Real runrelay processes on one database file, and a real redis-server, for the delivery
// tests and the delivery bench. (The lease branch writes test/helpers/cluster.ts; the two
// launchers are to be unified.)
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort, startChildServer, type ChildServer } from '../helpers/child.ts'

export const ROOT_KEY = 'rr_test_root_key_0123456789abcdef'

/** True when `redis-server` can be run here (`.ci/run` installs Debian's). */
export function haveRedis(): boolean {
  const r = spawnSync('redis-server', ['--version'], { encoding: 'utf8' })
  return r.status === 0
}

export interface RedisServer { port: number; url: string; proc: ChildProcess; kill(): Promise<void>; restart(): Promise<void>; stop(): Promise<void> }

const listening = (port: number) => new Promise<boolean>((resolve) => {
  const s = connect(port, '127.0.0.1')
  s.once('connect', () => { s.destroy(); resolve(true) })
  s.once('error', () => resolve(false))
})

/** redis-server on a free loopback port, no persistence; `kill` is SIGKILL, `restart` starts it again on the same port. */
export async function startRedis(): Promise<RedisServer> {
  const port = await freePort()
  let proc!: ChildProcess
  const launch = async () => {
    proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'yes'], { stdio: 'ignore' })
    const deadline = Date.now() + 10_000
    while (!(await listening(port))) {
      if (Date.now() > deadline || proc.exitCode !== null) throw new Error('redis-server did not start')
      await new Promise((r) => setTimeout(r, 20))
    }
  }
  const kill = async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return
    const gone = new Promise((r) => proc.once('exit', r))
    proc.kill('SIGKILL')
    await gone
  }
  await launch()
  const server: RedisServer = {
    port, url: `redis://127.0.0.1:${port}`,
    get proc() { return proc },
    kill,
    restart: launch,
    stop: kill,
  }
  return server
}

/** How long a process may take to answer /healthz (tsx compiles on start; a loaded 2-core machine is slow). */
const START_TIMEOUT_MS = 90_000

/** One server process, given time to start on a loaded machine. */
const startServer = (env: Record<string, string>) => startChildServer(env, undefined, START_TIMEOUT_MS)

export interface Cluster { dataDir: string; servers: ChildServer[]; stop(): Promise<void> }

/** `count` real Node processes (src/runtime/node/main.ts) on one database file; `perProcess` adds to one process's environment. */
export async function startCluster(count: number, env: Record<string, string> = {}, perProcess: (i: number) => Record<string, string> = () => ({})): Promise<Cluster> {
  const dataDir = mkdtempSync(join(tmpdir(), 'runrelay-mp-'))
  const servers: ChildServer[] = []
  const base = {
    RUNRELAY_DATA_DIR: dataDir, RUNRELAY_ROOT_KEY: ROOT_KEY, RUNRELAY_ALLOW_PRIVATE_NETWORK: '1', RUNRELAY_HEARTBEAT_MS: '1000',
    RUNRELAY_RATE_LIMIT_PER_MINUTE: '0', ...env,
  }
  try {
    // The first applies the migrations and writes the keys; the others start together.
    servers.push(await startServer({ ...base, ...perProcess(0) }))
    const rest = await Promise.allSettled(Array.from({ length: count - 1 }, (_, i) => startServer({ ...base, ...perProcess(i + 1) })))
    for (const r of rest) if (r.status === 'fulfilled') servers.push(r.value)
    const failed = rest.find((r): r is PromiseRejectedResult => r.status === 'rejected')
    if (failed) throw failed.reason
  } catch (err) {
    for (const s of servers) s.proc.kill('SIGKILL')
    throw err
  }
  return {
    dataDir, servers,
    async stop() {
      await Promise.all(servers.map(async (s) => {
        if (s.proc.exitCode !== null || s.proc.signalCode !== null) return
        s.proc.kill('SIGTERM')
        const t = setTimeout(() => s.proc.kill('SIGKILL'), 5_000)
        await s.exited
        clearTimeout(t)
      }))
      rmSync(dataDir, { recursive: true, force: true })
    },
  }
}
