// Launching real processes for tests and benchmarks: free ports, output capture, /healthz,
// stopping (a process or its whole group) and process trees. Only node: imports, so a bench
// can load it without loading the server.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { createServer } from 'node:net'

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

/** Poll /healthz every `intervalMs` until it answers, the process exits, or the time is up. */
export async function waitHealthy(url: string, exited: Promise<unknown>, timeoutMs: number, intervalMs = 50): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  let gone = false
  void exited.then(() => (gone = true))
  while (Date.now() < deadline && !gone) {
    try {
      const res = await fetch(url + '/healthz', { signal: AbortSignal.timeout(2_000) })
      if (res.ok) return true
    } catch { /* not listening yet */ }
    await new Promise((r) => setTimeout(r, intervalMs))
  }
  return false
}

export interface Exit { code: number | null; signal: NodeJS.Signals | null }

/** A spawned process with its stdout and stderr collected. */
export interface Spawned {
  proc: ChildProcess
  /** Everything it wrote so far (stdout and stderr interleaved), and a spawn error if any. */
  output(): string
  /** Resolves once it has exited (code -1 when it could not be spawned). */
  exited: Promise<Exit>
}

/** Spawn `command` with stdout and stderr piped and collected (stdin ignored). */
export function spawnCollecting(command: string, args: readonly string[], options: Omit<SpawnOptions, 'stdio'> = {}): Spawned {
  const proc = spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  proc.stdout!.on('data', (d) => (out += d))
  proc.stderr!.on('data', (d) => (out += d))
  const exited = new Promise<Exit>((r) => {
    proc.once('exit', (code, signal) => r({ code, signal }))
    proc.once('error', (err) => { out += String(err); r({ code: -1, signal: null }) })
  })
  return { proc, output: () => out, exited }
}

/** Send `signal` to the process group of a child spawned `detached` (wrangler, npm and their children). */
export function signalGroup(proc: ChildProcess, signal: NodeJS.Signals): void {
  try { process.kill(-proc.pid!, signal) } catch { /* gone */ }
}

/**
 * Stop a child cleanly: SIGTERM, then SIGKILL if it is still there after `timeoutMs`; resolves
 * once it has exited. `group` signals its whole process group.
 */
export async function terminate(proc: ChildProcess, exited: Promise<unknown>, timeoutMs: number, group = false): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return
  const signal = (sig: NodeJS.Signals) => (group ? signalGroup(proc, sig) : proc.kill(sig))
  signal('SIGTERM')
  const timer = setTimeout(() => signal('SIGKILL'), timeoutMs)
  await exited
  clearTimeout(timer)
}

/** Every live descendant of pid (Linux /proc), grandchildren in other process groups included. */
export function descendants(pid: number): number[] {
  const children = new Map<number, number[]>()
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue
    try {
      const ppid = Number(readFileSync(`/proc/${d}/stat`, 'utf8').split(') ')[1]!.split(' ')[1])
      children.set(ppid, [...(children.get(ppid) ?? []), Number(d)])
    } catch { /* gone */ }
  }
  const out: number[] = []
  const walk = (p: number) => { for (const c of children.get(p) ?? []) { out.push(c); walk(c) } }
  walk(pid)
  return out
}

export interface ChildServer { url: string; proc: ChildProcess; output: () => string; exited: Promise<number | null> }

/** `npm start`'s entry in a child process (tsx on the pinned Node), ready when /healthz answers. */
export async function startChildServer(env: Record<string, string>, port?: number, timeoutMs = 20_000): Promise<ChildServer> {
  const p = port ?? (await freePort())
  const child = spawnCollecting(process.execPath, ['--import', 'tsx', 'src/runtime/node/main.ts'], {
    env: { ...process.env, PORT: String(p), HOST: '127.0.0.1', RUNRELAY_LOG: 'info', ...env },
  })
  const url = `http://127.0.0.1:${p}`
  if (!(await waitHealthy(url, child.exited, timeoutMs))) {
    const gone = child.proc.exitCode !== null || child.proc.signalCode !== null
    child.proc.kill('SIGKILL')
    await child.exited
    throw new Error(`${gone ? 'server exited' : `server not healthy on ${url} within ${timeoutMs} ms`}: ${child.output()}`)
  }
  return { url, proc: child.proc, output: child.output, exited: child.exited.then((e) => e.code) }
}
