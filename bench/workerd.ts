/**
 * runrelay's Worker in local workerd without `wrangler dev`'s proxy, for the Workers benches:
 * the bundle `wrangler deploy --dry-run` builds (what a deployment ships), run by Miniflare
 * (the library wrangler itself runs workerd with; resolved through wrangler so the two never
 * disagree), with the Durable Object bindings and vars of wrangler.toml. Clients connect to
 * workerd's own socket: `wrangler dev` puts a second workerd (its proxy worker) in front, and
 * that proxy is what dropped every socket near 3,000 subscribers.
 *
 *   const w = await launchWorkerd({ RUNRELAY_RUN_SHARDS: '8' })   // { url, rootKey, stop() }
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { delimiter, dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startLibsqlHttpServer } from '../scripts/libsql-http-server.ts'
import { freePort } from '../test/helpers/child.ts'

const ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '..')
const BIN = join(ROOT, 'node_modules/.bin')

/** The Miniflare that wrangler depends on (not a dependency of ours: wrangler pins it). */
export function loadMiniflare(): {
  Miniflare: new (opts: unknown) => { ready: Promise<URL>; dispose(): Promise<void> }
  convertV4MiniflareOptions(opts: Record<string, unknown>): unknown
} {
  const fromWrangler = createRequire(createRequire(import.meta.url).resolve('wrangler/package.json'))
  return fromWrangler('miniflare')
}

/** Bundle the Worker once per process, as `wrangler deploy` would (esbuild, nodejs_compat aliases). */
let bundled: string | undefined
function bundle(): string {
  if (bundled) return bundled
  const out = mkdtempSync(join(tmpdir(), 'runrelay-bundle-'))
  execFileSync(join(BIN, 'wrangler'), ['deploy', '--dry-run', '--outdir', out], {
    cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'], timeout: 120_000,
    env: { ...process.env, PATH: `${BIN}${delimiter}${process.env.PATH ?? ''}`, WRANGLER_SEND_METRICS: 'false', CLOUDFLARE_CF_FETCH_ENABLED: 'false', NO_COLOR: '1', CI: '1' },
  })
  process.once('exit', () => rmSync(out, { recursive: true, force: true }))
  return (bundled = join(out, 'index.js'))
}

/** `[vars]` of wrangler.toml (flat `KEY = "value"` lines), so the bench runs the shipped defaults. */
function tomlVars(): Record<string, string> {
  const text = readFileSync(join(ROOT, 'wrangler.toml'), 'utf8')
  const section = text.split(/^\[vars\]\s*$/m)[1]?.split(/^\[/m)[0] ?? ''
  return Object.fromEntries([...section.matchAll(/^([A-Z0-9_]+)\s*=\s*"([^"]*)"/gm)].map((m) => [m[1]!, m[2]!]))
}

export interface LaunchedWorkerd {
  url: string
  rootKey: string
  stop(): Promise<void>
}

/** The Worker and its Durable Objects in one workerd (Miniflare), with a libSQL test server; `vars` override. */
export async function launchWorkerd(vars: Record<string, string> = {}): Promise<LaunchedWorkerd> {
  const { Miniflare, convertV4MiniflareOptions } = loadMiniflare()
  const rootKey = 'rr_test_root_key_0123456789abcdef'
  const authToken = 'workerd-bench-token'
  const libsql = await startLibsqlHttpServer({ authToken })
  const port = await freePort()
  const script = bundle()
  // Miniflare 5 takes a new options shape; convertV4MiniflareOptions maps the v4 one (documented in its README).
  const mf = new Miniflare(convertV4MiniflareOptions({
    // cf: false: the placeholder `request.cf` (the real one is fetched from the internet, unreachable here).
    host: '127.0.0.1', port, cf: false,
    workers: [{
      // modulesRoot: module names are paths relative to it, and workerd refuses ".." in them.
      name: 'runrelay', modules: true, scriptPath: script, modulesRoot: dirname(script),
      compatibilityDate: tomlValue('compatibility_date'), compatibilityFlags: ['nodejs_compat'],
      durableObjects: Object.fromEntries(
        [['RUNS', 'RunObject'], ['FEEDS', 'FeedObject'], ['FEED_RELAYS', 'FeedRelayObject'], ['RUN_SHARDS', 'RunShardObject'], ['JOBS', 'JobsObject']]
          .map(([binding, className]) => [binding, { className, useSQLite: true }]),
      ),
      bindings: {
        ...tomlVars(),
        LIBSQL_URL: libsql.url, LIBSQL_AUTH_TOKEN: authToken,
        RUNRELAY_ENCRYPTION_KEY: 'AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8',
        RUNRELAY_ROOT_KEY: rootKey, RUNRELAY_ALLOW_PRIVATE_NETWORK: '1', RUNRELAY_LOG: 'silent',
        ...vars,
      },
    }],
  }))
  let url: string
  try {
    url = (await mf.ready).origin
    const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(30_000) })
    if (!res.ok) throw new Error(`workerd /healthz: ${res.status} ${await res.text()}`)
  } catch (err) {
    await mf.dispose().catch(() => {})
    await libsql.close()
    throw err
  }
  let stopping: Promise<void> | undefined
  return {
    url, rootKey,
    stop: () => (stopping ??= (async () => { await mf.dispose().catch(() => {}); await libsql.close() })()),
  }
}

function tomlValue(key: string): string {
  const m = readFileSync(join(ROOT, 'wrangler.toml'), 'utf8').match(new RegExp(`^${key}\\s*=\\s*"([^"]+)"`, 'm'))
  if (!m) throw new Error(`wrangler.toml has no ${key}`)
  return m[1]!
}
