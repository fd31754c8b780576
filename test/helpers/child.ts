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

/** Poll /healthz until it answers, the process exits, or the time is up. */
export async function waitHealthy(url: string, exited: Promise<unknown>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  let gone = false
  void exited.then(() => (gone = true))
  while (Date.now() < deadline && !gone) {
    try {
      const res = await fetch(url + '/healthz', { signal: AbortSignal.timeout(2_000) })
      if (res.ok) return true
    } catch { /* not listening yet */ }
    await new Promise((r) => setTimeout(r, 50))
  }
  return false
}

export interface ChildServer { url: string; proc: ChildProcess; output: () => string; exited: Promise<number | null> }

/** `npm start`'s entry in a child process (tsx on the pinned Node), ready when /healthz answers. */
export async function startChildServer(env: Record<string, string>, port?: number, timeoutMs = 20_000): Promise<ChildServer> {
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
  }, timeoutMs, 'child server /healthz')
  return { url, proc, output: () => out, exited }
}
