import { spawn, type ChildProcess } from 'node:child_process'
import { createServer } from 'node:net'
import { until } from './server.ts'

/** A free loopback port (bound and released). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port
      srv.close(() => resolve(port))
    })
  })
}

export interface ChildServer { url: string; proc: ChildProcess; output: () => string; exited: Promise<number | null> }

/** `npm start`'s entry in a child process (tsx on the pinned Node), ready when /healthz answers. */
export async function startChildServer(env: Record<string, string>, port?: number): Promise<ChildServer> {
  const p = port ?? (await freePort())
  const proc = spawn(process.execPath, ['--import', 'tsx', 'src/runtime/node/main.ts'], {
    env: { ...process.env, PORT: String(p), HOST: '127.0.0.1', RUNRELAY_LOG: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  proc.stdout!.on('data', (d) => (out += d))
  proc.stderr!.on('data', (d) => (out += d))
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)))
  const url = `http://127.0.0.1:${p}`
  await until(async () => {
    if (proc.exitCode !== null) throw new Error(`server exited: ${out}`)
    try { return (await fetch(url + '/healthz')).ok } catch { return false }
  }, 20_000, 'child server /healthz')
  return { url, proc, output: () => out, exited }
}
