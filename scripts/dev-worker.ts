/**
 * `npm run dev:worker [-- <wrangler dev flags>]`: runrelay on workerd (wrangler dev) on a
 * fresh clone, with nothing else to set up.
 *
 * - Secrets: generated into .dev.vars (gitignored; wrangler dev reads it) on the first run:
 *   RUNRELAY_ENCRYPTION_KEY and RUNRELAY_ROOT_KEY. The root key is printed that once.
 * - Database: LIBSQL_URL (and LIBSQL_AUTH_TOKEN) from the environment or .dev.vars when set
 *   (sqld, `turso dev`, Turso); otherwise the development libSQL HTTP server
 *   (scripts/libsql-http-server.ts) over ./data/worker-dev.db, on RUNRELAY_DEV_LIBSQL_PORT
 *   (default 8081), with a fresh bearer token each run.
 * - The two processes are tied: Ctrl-C (SIGINT) or SIGTERM stops both; when one exits on its
 *   own the other is stopped and the reason printed, and the exit code is non-zero.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { delimiter, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseEnv } from 'node:util'

const ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '..')
const BIN = join(ROOT, 'node_modules/.bin')
const DEV_VARS = join(ROOT, '.dev.vars')
const STOP_TIMEOUT_MS = 8_000

/** Reads .dev.vars, creating it with fresh development secrets if it does not exist. */
export function ensureDevVars(path = DEV_VARS): { vars: Record<string, string>; created: boolean } {
  if (existsSync(path)) return { vars: parseEnv(readFileSync(path, 'utf8')) as Record<string, string>, created: false }
  const vars = {
    RUNRELAY_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
    RUNRELAY_ROOT_KEY: `rr_dev_${randomBytes(24).toString('base64url')}`,
  }
  const text = [
    '# Development secrets for `wrangler dev` (npm run dev:worker), generated on the first run.',
    '# Never commit this file. LIBSQL_URL / LIBSQL_AUTH_TOKEN may be added here to use sqld or Turso.',
    ...Object.entries(vars).map(([k, v]) => `${k}="${v}"`),
  ].join('\n') + '\n'
  writeFileSync(path, text, { mode: 0o600, flag: 'wx' })
  return { vars, created: true }
}

interface Child { name: string; proc: ChildProcess; exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }> }

/** Spawn in its own process group, so one signal reaches the child and everything it starts. */
function start(name: string, cmd: string, args: string[], env: NodeJS.ProcessEnv, stdout: 'inherit' | 'pipe'): Child {
  const proc = spawn(cmd, args, { cwd: ROOT, env, stdio: ['ignore', stdout, 'inherit'], detached: true })
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => {
    proc.once('exit', (code, signal) => r({ code, signal }))
    proc.once('error', (err) => { console.error(`dev:worker: could not start ${name}: ${err.message}`); r({ code: 1, signal: null }) })
  })
  return { name, proc, exited }
}

/** SIGTERM the child's process group, SIGKILL it if it is still there after the timeout. */
async function stop(child: Child): Promise<void> {
  const signal = (sig: NodeJS.Signals) => { try { process.kill(-child.proc.pid!, sig) } catch { /* gone */ } }
  if (child.proc.exitCode === null && child.proc.signalCode === null) {
    signal('SIGTERM')
    const timer = setTimeout(() => signal('SIGKILL'), STOP_TIMEOUT_MS)
    await child.exited
    clearTimeout(timer)
  }
  signal('SIGKILL') // anything the child left in its group (workerd under wrangler)
}

async function main(): Promise<number> {
  const { vars, created } = ensureDevVars()
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    // wrangler needs the pinned Node 22 (node_modules/.bin/node) whatever node runs this.
    PATH: `${BIN}${delimiter}${process.env.PATH ?? ''}`,
    WRANGLER_SEND_METRICS: process.env.WRANGLER_SEND_METRICS ?? 'false',
    // Without this wrangler dev asks workers.cloudflare.com for a Request.cf object at start.
    CLOUDFLARE_CF_FETCH_ENABLED: process.env.CLOUDFLARE_CF_FETCH_ENABLED ?? 'false',
  }
  const children: Child[] = []
  const wranglerArgs = ['dev', '--ip', '127.0.0.1', ...process.argv.slice(2)]
  const libsqlUrl = process.env.LIBSQL_URL || vars.LIBSQL_URL
  if (libsqlUrl) {
    console.log(`dev:worker: using LIBSQL_URL ${libsqlUrl.replace(/\/\/[^@/]*@/, '//')}`)
    // Environment beats .dev.vars (wrangler would otherwise take .dev.vars' values).
    if (process.env.LIBSQL_URL) wranglerArgs.push('--var', `LIBSQL_URL:${process.env.LIBSQL_URL}`)
    if (process.env.LIBSQL_AUTH_TOKEN) wranglerArgs.push('--var', `LIBSQL_AUTH_TOKEN:${process.env.LIBSQL_AUTH_TOKEN}`)
  } else {
    const token = randomBytes(24).toString('base64url')
    const port = process.env.RUNRELAY_DEV_LIBSQL_PORT ?? '8081'
    const libsql = start('the libSQL server', process.execPath, ['--import', 'tsx', 'scripts/libsql-http-server.ts', 'data/worker-dev.db', port], { ...env, LIBSQL_AUTH_TOKEN: token }, 'pipe')
    children.push(libsql)
    const url = await new Promise<string | undefined>((r) => {
      let out = ''
      libsql.proc.stdout!.on('data', (d) => {
        out += d
        const m = out.match(/listening (\S+)/)
        if (m) r(m[1])
      })
      void libsql.exited.then(() => r(undefined))
    })
    if (!url) {
      console.error(`dev:worker: the libSQL server did not start (port ${port} in use? set RUNRELAY_DEV_LIBSQL_PORT)`)
      await stop(libsql)
      return 1
    }
    console.log(`dev:worker: libSQL server ${url} over data/worker-dev.db (set LIBSQL_URL to use sqld or Turso instead)`)
    wranglerArgs.push('--var', `LIBSQL_URL:${url}`, '--var', `LIBSQL_AUTH_TOKEN:${token}`)
  }
  if (created) {
    // Shown once, like `npm start`; it stays in .dev.vars for later runs and for `npm run seed:demo`.
    console.log(`\nroot key (shown once, keep it; also in .dev.vars): ${vars.RUNRELAY_ROOT_KEY}\n`)
  }
  const wrangler = start('wrangler dev', join(BIN, 'wrangler'), wranglerArgs, env, 'inherit')
  children.push(wrangler)

  let stopping = false
  const stopAll = async () => { stopping = true; await Promise.all(children.map(stop)) }
  const signalled = new Promise<number>((r) => {
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(sig, () => r(0))
  })
  const firstExit = Promise.race(children.map((c) => c.exited.then((how) => ({ child: c, how }))))
  const outcome = await Promise.race([signalled.then(() => undefined), firstExit])
  if (outcome && !stopping) {
    const others = children.filter((c) => c !== outcome.child).map((c) => c.name).join(' and ')
    console.error(`\ndev:worker: ${outcome.child.name} exited (${outcome.how.signal ?? `code ${outcome.how.code}`}); stopping ${others || 'nothing else'}.`)
  }
  await stopAll()
  return outcome ? 1 : 0
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exit(await main())
}
