/**
 * runrelay on workerd through `wrangler dev` (the repo's wrangler.toml, i.e. `npm run
 * dev:worker`), for tests that run in Node: starts the libSQL test server (Hrana over HTTP
 * in front of an embedded libSQL file) and wrangler dev on a free loopback port, with the
 * variables a deployment would have as secrets, and waits for /healthz.
 *
 *   const server = await launchWorkers()   // { url, rootKey, stop() }
 *
 * Runnable by hand too: `npx tsx test/conformance/launch-workers.ts` prints the URL and the
 * root key and keeps both servers up until Ctrl-C.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startLibsqlHttpServer, type LibsqlHttpServer } from '../../scripts/libsql-http-server.ts'
import { freePort, signalGroup, spawnCollecting, terminate, waitHealthy } from '../helpers/child.ts'

const ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..')
const BIN = join(ROOT, 'node_modules/.bin')

export interface LaunchedWorkers {
  url: string
  rootKey: string
  /** The libSQL test server behind it (outage switch: libsql.setFailing). */
  libsql: LibsqlHttpServer
  /** Stop wrangler dev (SIGTERM, SIGKILL after a timeout) and the libSQL server. */
  stop(): Promise<void>
  output(): string
}

/** wrangler dev + the libSQL test server; `vars` override the defaults (e.g. RUNRELAY_FEED_SHARDS). */
export async function launchWorkers(vars: Record<string, string> = {}, opts: { startTimeoutMs?: number; stopTimeoutMs?: number } = {}): Promise<LaunchedWorkers> {
  const startTimeoutMs = opts.startTimeoutMs ?? 60_000
  const stopTimeoutMs = opts.stopTimeoutMs ?? 8_000
  const rootKey = vars.RUNRELAY_ROOT_KEY ?? 'rr_test_root_key_0123456789abcdef'
  const authToken = 'wrangler-dev-token'
  const libsql = await startLibsqlHttpServer({ authToken, controlEndpoints: true })
  const dir = mkdtempSync(join(tmpdir(), 'runrelay-wrangler-'))
  // Secrets go in an env file (what `wrangler secret put` holds in production).
  const envFile = join(dir, '.env')
  const all: Record<string, string> = {
    LIBSQL_URL: libsql.url, LIBSQL_AUTH_TOKEN: authToken,
    RUNRELAY_ENCRYPTION_KEY: 'AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8',
    RUNRELAY_ROOT_KEY: rootKey, RUNRELAY_ALLOW_PRIVATE_NETWORK: '1', RUNRELAY_HEARTBEAT_MS: '1000', RUNRELAY_LOG: 'silent',
    ...vars,
  }
  writeFileSync(envFile, Object.entries(all).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join('\n') + '\n', { mode: 0o600 })
  let lastError = ''
  for (let attempt = 0; attempt < 3; attempt++) {
    const [port, inspector] = [await freePort(), await freePort()]
    const { proc: child, output, exited } = spawnCollecting(join(BIN, 'wrangler'), [
      'dev', '--ip', '127.0.0.1', '--port', String(port), '--inspector-port', String(inspector),
      '--env-file', envFile, '--persist-to', join(dir, 'state'), '--show-interactive-dev-session=false', '--log-level', 'warn',
    ], {
      cwd: ROOT,
      env: {
        ...process.env,
        // wrangler needs the pinned Node 22 (node_modules/.bin/node).
        PATH: `${BIN}${delimiter}${process.env.PATH ?? ''}`,
        WRANGLER_SEND_METRICS: 'false', CLOUDFLARE_CF_FETCH_ENABLED: 'false', NO_COLOR: '1', CI: '1',
      },
      // wrangler starts workerd as a child: its own process group, signalled as a whole.
      detached: true,
    })
    const url = `http://127.0.0.1:${port}`
    if (!(await waitHealthy(url, exited, startTimeoutMs))) {
      signalGroup(child, 'SIGKILL')
      await exited
      lastError = `wrangler dev did not become healthy on ${url} within ${startTimeoutMs} ms:\n${output()}`
      if (/EADDRINUSE|address already in use/i.test(output())) continue
      break
    }
    let stopping: Promise<void> | undefined
    return {
      url, rootKey, libsql,
      output,
      stop: () => (stopping ??= (async () => {
        await terminate(child, exited, stopTimeoutMs, true)
        await libsql.close()
        rmSync(dir, { recursive: true, force: true })
      })()),
    }
  }
  await libsql.close()
  rmSync(dir, { recursive: true, force: true })
  throw new Error(lastError)
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const server = await launchWorkers()
  console.log(`runrelay (wrangler dev) on ${server.url}\nroot key: ${server.rootKey}\nlibSQL: ${server.libsql.url}`)
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => { void server.stop().then(() => process.exit(0)) })
}
