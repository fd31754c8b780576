// A real redis-server for the cross-process bus tests and benches.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { connect } from 'node:net'
import { freePort } from './child.ts'

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
