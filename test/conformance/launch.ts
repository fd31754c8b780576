import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { freePort, spawnCollecting, terminate, waitHealthy, type Exit } from '../helpers/child.ts'

const ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..')
const DENO = join(ROOT, 'node_modules/.bin/deno')
/** The same flags as `npm run start:deno`. */
export const DENO_ARGS = ['run', '-A', '--node-modules-dir=manual', join(ROOT, 'src/runtime/deno/main.ts')]
const BUN = join(ROOT, 'node_modules/.bin/bun')
/** The same command as `npm run start:bun`. */
export const BUN_ARGS = [join(ROOT, 'src/runtime/bun/main.ts')]

export interface LaunchedServer {
  url: string
  rootKey: string
  dataDir: string
  /** SIGTERM (clean shutdown: sockets closed with 1012), SIGKILL after a timeout; resolves on exit. */
  stop(): Promise<void>
  /** SIGKILL at once (a crash). */
  kill(): void
  /** Resolves with the exit code (or signal) once the process has exited. */
  exited: Promise<Exit>
  /** Everything the process wrote so far (for failure messages). */
  output(): string
}

interface LaunchOptions { startTimeoutMs?: number; stopTimeoutMs?: number }

/** runrelay on real Deno as a child process (see launchRuntime). */
export const launchDeno = (env: Record<string, string> = {}, opts: LaunchOptions = {}) => launchRuntime('Deno', DENO, DENO_ARGS, env, opts)

/** runrelay on real Bun as a child process (see launchRuntime). */
export const launchBun = (env: Record<string, string> = {}, opts: LaunchOptions = {}) => launchRuntime('Bun', BUN, BUN_ARGS, env, opts)

/**
 * runrelay on a real runtime as a child process: loopback, a fresh data dir (unless
 * RUNRELAY_DATA_DIR is given, which is then kept), a known root key, private network allowed,
 * silent logs.
 */
async function launchRuntime(name: string, command: string, args: string[], env: Record<string, string>, opts: LaunchOptions): Promise<LaunchedServer> {
  const startTimeoutMs = opts.startTimeoutMs ?? 20_000
  const stopTimeoutMs = opts.stopTimeoutMs ?? 8_000
  const ownDir = !env.RUNRELAY_DATA_DIR
  const dataDir = env.RUNRELAY_DATA_DIR ?? mkdtempSync(join(tmpdir(), `runrelay-${name.toLowerCase()}-`))
  const rootKey = env.RUNRELAY_ROOT_KEY ?? 'rr_test_root_key_0123456789abcdef'
  let lastError = ''
  // The free port can be taken between probe and bind; one retry covers that race.
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = env.PORT && env.PORT !== '0' ? Number(env.PORT) : await freePort()
    const childEnv: Record<string, string> = {
      ...(process.env as Record<string, string>),
      NO_COLOR: '1', DENO_NO_UPDATE_CHECK: '1',
      HOST: '127.0.0.1', RUNRELAY_LOG: 'silent', RUNRELAY_HEARTBEAT_MS: '1000', RUNRELAY_ALLOW_PRIVATE_NETWORK: '1',
      ...env,
      PORT: String(port), RUNRELAY_DATA_DIR: dataDir, RUNRELAY_ROOT_KEY: rootKey,
    }
    const { proc: child, output, exited } = spawnCollecting(command, args, { cwd: ROOT, env: childEnv })
    const url = `http://127.0.0.1:${port}`
    if (!(await waitHealthy(url, exited, startTimeoutMs))) {
      child.kill('SIGKILL')
      await exited
      lastError = `runrelay on ${name} did not become healthy on ${url} within ${startTimeoutMs} ms:\n${output()}`
      if (/AddrInUse|address already in use/i.test(output()) && !(env.PORT && env.PORT !== '0')) continue
      break
    }
    let stopping: Promise<void> | undefined
    return {
      url, rootKey, dataDir, exited,
      output,
      kill: () => { child.kill('SIGKILL') },
      stop: () => (stopping ??= (async () => {
        await terminate(child, exited, stopTimeoutMs)
        if (ownDir) rmSync(dataDir, { recursive: true, force: true })
      })()),
    }
  }
  if (ownDir) rmSync(dataDir, { recursive: true, force: true })
  throw new Error(lastError)
}
