import { fork, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'

/** A child process (its own CPU and RSS accounting) that answers calls over IPC. */
export interface Agent {
  call<T = any>(cmd: string, args?: unknown, timeoutMs?: number): Promise<T>
  pid: number
  stop(): Promise<void>
}

type Handlers = Record<string, (args: any) => unknown>

/** The Bun binary of the `bun` devDependency (bench agents can run on it: Bun speaks Node's IPC). */
export const BUN_BIN = fileURLToPath(new URL('../node_modules/bun/bin/bun.exe', import.meta.url))

/** Start `file` (a bench agent) with tsx, --expose-gc and a bounded lifetime; on Bun when asked. */
export function startAgent(file: string, name: string, runtime: 'node' | 'bun' = 'node'): Agent {
  const child: ChildProcess = fork(fileURLToPath(new URL(file, import.meta.url)), [], {
    ...(runtime === 'bun' ? { execPath: BUN_BIN } : {}),
    // BENCH_CPU_PROF=<dir> profiles every agent (node or bun --cpu-prof) for a look at where time goes.
    execArgv: runtime === 'bun' ? (process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`, `--cpu-prof-name=${name}-bun-${Date.now()}.cpuprofile`] : []) : ['--expose-gc', '--max-old-space-size=2048', ...(process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`, `--cpu-prof-name=${name}-${Date.now()}.cpuprofile`] : []), '--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, BENCH_AGENT: name },
  })
  let next = 1
  const waiting = new Map<number, { resolve: (v: any) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>()
  child.on('message', (m: any) => {
    const w = waiting.get(m.id)
    if (!w) return
    waiting.delete(m.id)
    clearTimeout(w.timer)
    if (m.error) w.reject(new Error(`${name}: ${m.error}`))
    else w.resolve(m.result)
  })
  const exited = new Promise<void>((resolve) => child.once('exit', () => {
    for (const w of waiting.values()) { clearTimeout(w.timer); w.reject(new Error(`${name} exited`)) }
    waiting.clear()
    resolve()
  }))
  return {
    pid: child.pid!,
    call(cmd, args, timeoutMs = 120_000) {
      return new Promise((resolve, reject) => {
        const id = next++
        const timer = setTimeout(() => { waiting.delete(id); reject(new Error(`${name}.${cmd} timed out after ${timeoutMs} ms`)) }, timeoutMs)
        waiting.set(id, { resolve, reject, timer })
        child.send({ id, cmd, args })
      })
    },
    async stop() {
      if (child.exitCode === null) {
        child.send({ id: 0, cmd: 'exit' })
        const t = setTimeout(() => child.kill('SIGKILL'), 5_000)
        await exited
        clearTimeout(t)
      }
    },
  }
}

/** In an agent: answer the parent's calls; exit when told to or when the parent goes away. */
export function serveAgent(handlers: Handlers): void {
  process.on('disconnect', () => process.exit(0))
  // A safety net: no agent outlives a bench run.
  setTimeout(() => process.exit(3), 15 * 60_000).unref()
  process.on('message', async (m: any) => {
    if (m.cmd === 'exit') {
      try { await handlers.exit?.(undefined) } finally { process.exit(0) }
    }
    try {
      const h = handlers[m.cmd]
      if (!h) throw new Error(`unknown command ${m.cmd}`)
      const result = await h(m.args)
      process.send!({ id: m.id, result })
    } catch (err) {
      process.send!({ id: m.id, error: String((err as Error)?.stack ?? err) })
    }
  })
}

/** Wall-clock milliseconds with sub-millisecond precision, comparable across processes on one machine. */
export const nowMs = () => performance.timeOrigin + performance.now()

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

export function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return NaN
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!
}

/** How a bench case reports one row beside its baseline (bench/run.ts `row`): the ratio and whether the goal is met. */
export type RowFn = (r: { case: string; metric: string; runrelay: number; baseline: number; unit: string; goal: string; limit: number; higherIsBetter?: boolean; met?: boolean; note?: string }) => void
