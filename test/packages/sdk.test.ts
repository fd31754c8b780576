import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { exec, nodeOf, ROOT, runWorker, scriptCommand } from '../../scripts/examples.ts'
import { currentOpenApi, renderSdkTypes, SDK_TYPES_MODULE } from '../../scripts/generate-sdk.ts'
import { demoTenant } from '../helpers/live.ts'
import { startTestServer, type TestServer } from '../helpers/server.ts'

// @runrelay/sdk as a user gets it: `npm pack` (its prepack generates the types from the server's
// OpenAPI document and builds), installed from the tarball into an app with nothing from the
// registry, then examples/sdk/check.mjs against a live server on Node 20 and 22, Deno, Bun and
// in real workerd; the app's TypeScript is checked against the installed .d.ts.
const APP = join(ROOT, 'test-artifacts', 'sdk-app')
const bin = (name: string) => join(ROOT, 'node_modules', '.bin', name)

let server: TestServer
let env: Record<string, string>
let receiver: Server
const figures: Record<string, number> = {}

beforeAll(async () => {
  server = await startTestServer()
  const t = await demoTenant(server, 'sdk')
  const deliveries: Array<{ body: string; headers: Record<string, string> }> = []
  receiver = createServer((req, res) => {
    let body = ''
    req.on('data', (d) => (body += d))
    req.on('end', () => { deliveries.push({ body, headers: req.headers as Record<string, string> }); res.writeHead(204).end() })
  })
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r))
  const hookUrl = `http://127.0.0.1:${(receiver.address() as { port: number }).port}/hook`
  const ok = await t.workflow('quick', { durationMs: 600, steps: 2 })
  const failing = await t.workflow('doomed', { durationMs: 300, steps: 1, outcome: 'failed' })
  const slow = await t.workflow('slow', { durationMs: 60_000, steps: 2 })

  // One real delivery, signed by the server, for every runtime to verify.
  const endpoint = await (await fetch(`${server.url}/v1/webhooks`, { method: 'POST', headers: { authorization: `Bearer ${t.key}`, 'content-type': 'application/json' }, body: JSON.stringify({ url: hookUrl, workflow_id: ok, events: 'terminal' }) })).json() as { secret: string }
  await t.trigger(ok)
  const deadline = Date.now() + 30_000
  while (deliveries.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100))
  expect(deliveries.length, 'a webhook delivery arrived').toBeGreaterThan(0)
  const d = deliveries[0]!
  env = {
    RUNRELAY_URL: server.url, RUNRELAY_KEY: t.key, RUNRELAY_WORKFLOW: ok, RUNRELAY_FAILING: failing, RUNRELAY_SLOW: slow,
    RUNRELAY_WEBHOOK: JSON.stringify({ secret: endpoint.secret, body: d.body, headers: { 'webhook-id': d.headers['webhook-id'], 'webhook-timestamp': d.headers['webhook-timestamp'], 'webhook-signature': d.headers['webhook-signature'] } }),
  }

  // Pack with the package's own prepack (generate + tsup), as `npm publish` would.
  rmSync(APP, { recursive: true, force: true })
  mkdirSync(join(APP, 'tarballs'), { recursive: true })
  const pack = await exec('npm', ['pack', '-w', 'packages/sdk', '--pack-destination', join(APP, 'tarballs'), '--json'], { timeoutMs: 240_000 })
  figures.packMs = pack.ms
  // npm prints the build's output (coloured when FORCE_COLOR is set: `\x1b[34mCLI`) and then its JSON report, which starts a line.
  const [{ filename }] = JSON.parse(pack.stdout.slice(pack.stdout.lastIndexOf('\n[') + 1)) as Array<{ filename: string }>
  const tarball = join(APP, 'tarballs', filename.replace(/^@/, '').replace('/', '-'))
  const dependencies = { '@runrelay/sdk': `file:${tarball}` }
  writeFileSync(join(APP, 'package.json'), JSON.stringify({ name: 'sdk-app', private: true, type: 'module', dependencies }, null, 2))
  // `npm ci --offline` from a lock made of the repository's own entries: the SDK's dependencies
  // come from npm's cache exactly as the repository locked them, and nothing from the network.
  const manifest = JSON.parse((await exec('tar', ['-xzOf', tarball, 'package/package.json'])).stdout) as { dependencies: Record<string, string> }
  writeFileSync(join(APP, 'package-lock.json'), JSON.stringify(appLock(dependencies, manifest.dependencies), null, 2))
  const install = await exec('npm', ['ci', '--offline', '--no-audit', '--no-fund', '--ignore-scripts'], { cwd: APP, timeoutMs: 120_000 })
  figures.installMs = install.ms
  cpSync(join(ROOT, 'examples', 'sdk'), APP, { recursive: true })
}, 420_000)

/** A lockfile for an app that depends on the SDK tarball: the SDK's dependencies, transitively, as the repository's lock pins them. */
function appLock(dependencies: Record<string, string>, sdkDependencies: Record<string, string>) {
  const root = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { version: string; resolved?: string; integrity?: string; license?: string; dependencies?: Record<string, string> }> }
  const packages: Record<string, unknown> = {
    '': { name: 'sdk-app', dependencies },
    'node_modules/@runrelay/sdk': { version: '0.1.0', resolved: dependencies['@runrelay/sdk'], dependencies: sdkDependencies },
  }
  const queue = Object.keys(sdkDependencies)
  while (queue.length) {
    const name = queue.shift()!
    const entry = root.packages[`node_modules/${name}`]
    if (!entry) throw new Error(`the repository's lock has no node_modules/${name}`)
    if (packages[`node_modules/${name}`]) continue
    const { version, resolved, integrity, license, dependencies: deps } = entry
    packages[`node_modules/${name}`] = { version, resolved, integrity, license, ...(deps && { dependencies: deps }) }
    queue.push(...Object.keys(deps ?? {}))
  }
  return { name: 'sdk-app', lockfileVersion: 3, requires: true, packages }
}

afterAll(async () => {
  await new Promise((r) => receiver?.close(r))
  await server?.stop()
  console.log(`sdk package: ${JSON.stringify(figures)}`)
})

/** What check.mjs must report on every runtime. */
function expectReport(r: any, runtime: RegExp) {
  expect(r.runtime).toMatch(runtime)
  expect(r.tenant).toMatch(/^ten_/)
  expect(r.triggerToken.first).toBe(202)
  expect(r.triggerToken.second).toBeGreaterThanOrEqual(400)
  expect(r.triggerToken.maxRuns).toBe(1)
  expect(r.completed).toEqual({ status: 'completed', terminal: true, sawPolls: true, result: true })
  expect(r.sameRun).toBe(true)
  expect(r.subscriberToken.status).toBe(200)
  expect(r.events.last).toBe('completed')
  expect(r.events.seqs).toBe(true)
  expect(r.failed).toBe('failed')
  expect(r.notFound).toEqual({ isRunRelayError: true, status: 404, code: 'not_found' })
  expect(r.waitTimeout).toBe('wait_timeout')
  expect(r.canceled).toBe('canceled')
  expect(r.webhook).toEqual({ type: 'run.status_changed', run: expect.stringMatching(/^run_/), tampered: 'invalid_signature' })
}

describe('@runrelay/sdk from its tarball', () => {
  it('the committed generated types are the current server\'s (run npm run sdk:generate when this fails)', async () => {
    expect(readFileSync(SDK_TYPES_MODULE, 'utf8')).toBe(await renderSdkTypes(await currentOpenApi()))
  }, 60_000)

  it('ships dist, README and LICENSE, with only its two dependencies', () => {
    const dir = join(APP, 'node_modules', '@runrelay', 'sdk')
    const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'))
    expect(Object.keys(manifest.dependencies).sort()).toEqual(['openapi-fetch', 'standardwebhooks'])
    expect(readFileSync(join(dir, 'README.md'), 'utf8')).toContain('createRunRelay')
    expect(readFileSync(join(dir, 'LICENSE'), 'utf8')).toContain('MIT License')
    // The generated route types are inside the published declarations.
    expect(readFileSync(join(dir, 'dist', 'index.d.ts'), 'utf8')).toContain('"/v1/runs/{id}/events"')
  })

  it('type-checks an app against the installed declarations', async () => {
    writeFileSync(join(APP, 'tsconfig.json'), JSON.stringify({
      compilerOptions: { target: 'ES2023', module: 'ESNext', moduleResolution: 'Bundler', lib: ['ES2023', 'DOM'], types: [], strict: true, noEmit: true },
      files: ['typed.ts'],
    }))
    const tsc = await exec(bin('tsc'), ['-p', join(APP, 'tsconfig.json')], { timeoutMs: 120_000 }).then(() => '', (err) => String(err.message))
    expect(tsc).toBe('')
  }, 120_000)

  for (const runtime of ['node20', 'node', 'deno', 'bun'] as const) {
    // Node 20 is this machine's system node; where it is missing the case is skipped, except in CI.
    it.runIf(runtime !== 'node20' || nodeOf(20) || process.env.CI)(`${runtime}: tokens, trigger and wait, typed history, errors, webhook verification`, async () => {
      const [cmd, args] = scriptCommand(runtime, APP) ?? (() => { throw new Error(`no ${runtime} here`) })()
      // scriptCommand points at the client examples' entry; the SDK app's is backend.mjs.
      const entry = join(APP, 'backend.mjs')
      const started = Date.now()
      const { stdout } = await exec(cmd, [...args.slice(0, -1), entry], { cwd: APP, env, timeoutMs: 90_000 })
      figures[`${runtime}Ms`] = Date.now() - started
      expectReport(JSON.parse(stdout.trim().split('\n').pop()!), runtime === 'deno' ? /^deno/ : runtime === 'bun' ? /^bun/ : runtime === 'node20' ? /^node v20/ : /^node v22/)
    }, 120_000)
  }

  it('workerd (wrangler dev): the same check with fetch only', async () => {
    const started = Date.now()
    const report = await runWorker(APP, { env: JSON.stringify(env) }, 90_000)
    figures.workerMs = Date.now() - started
    expectReport(report, /^workerd$/)
  }, 150_000)
})
