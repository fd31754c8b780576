import { mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { chromium, type Browser } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import {
  buildPackages, buildViteApp, exec, fillHtml, installedPackages, packAndInstall, PACKAGES, ROOT, runWorker, scriptCommand, seedDemo, serveStatic, type Installed,
} from '../../scripts/examples.ts'
import { logFigures } from '../helpers/figures.ts'
import { startTestServer, type TestServer } from '../helpers/server.ts'
import { CHROMIUM, needTool } from '../helpers/tools.ts'

// Every package built, packed with `npm pack`, installed from its tarball (nothing from the
// registry), and used by the examples against a live server: scripts on Node 20, Node 22,
// Deno and Bun, a Worker in workerd, and React, Vue, Svelte and plain-HTML pages in Chromium.
const haveBrowser = needTool('chromium', 'the browser examples (test/packages/examples.test.ts)')
const SHOTS = join(ROOT, 'test-artifacts', 'screenshots')
const SERVER_DEPS = ['hono', 'zod', '@libsql/client', 'drizzle-orm', 'jose', 'croner', 'tsx', 'commander', 'ws']

let server: TestServer
let installed: Installed
let demo: Awaited<ReturnType<typeof seedDemo>>
let browser: Browser | undefined
const figures: Record<string, number> = {}

beforeAll(async () => {
  const started = Date.now()
  server = await startTestServer()
  // Built once for the release lane by its globalSetup (test/helpers/release-setup.ts).
  figures.buildMs = inject('packagesBuildMs') ?? await buildPackages()
  installed = await packAndInstall()
  figures.packMs = installed.packMs
  figures.installMs = installed.installMs
  demo = await seedDemo(server.url, server.rootKey, { durationMs: 1_200, steps: 3 })
  if (haveBrowser) browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu'] })
  mkdirSync(SHOTS, { recursive: true })
  figures.setupMs = Date.now() - started
}, 180_000)

afterAll(async () => {
  await browser?.close()
  await server?.stop()
  logFigures('sdk examples', figures)
})

/** Each Vite example built once (the live-run test and the hooks test serve the same build). */
const builds = new Map<string, Promise<string>>()
const built = (app: 'react' | 'vue' | 'svelte') => {
  if (!builds.has(app)) builds.set(app, buildViteApp(join(installed.dir, app)))
  return builds.get(app)!
}

const env = async () => ({ RUNRELAY_URL: server.url, RUNRELAY_TOKEN: await demo.triggerToken(), RUNRELAY_WORKFLOW: demo.workflowId })

describe('packages from their tarballs', () => {
  it('install with none of the server dependencies, and ship only dist, README and LICENSE', async () => {
    expect(installedPackages(installed.dir)).toEqual(PACKAGES.map((p) => `@runrelay/${p}`).sort())
    for (const p of PACKAGES) {
      const manifest = JSON.parse(readFileSync(join(installed.dir, 'node_modules', '@runrelay', p, 'package.json'), 'utf8'))
      expect(Object.keys(manifest.dependencies ?? {}).filter((d) => d !== '@runrelay/client'), p).toEqual([])
      for (const dep of SERVER_DEPS) expect(manifest.peerDependencies?.[dep] === undefined || dep === 'ws', `${p} ${dep}`).toBe(true)
      expect(manifest.sideEffects === false || Array.isArray(manifest.sideEffects), p).toBe(true)
      expect(manifest.exports['.'].types).toMatch(/\.d\.ts$/)
      const { stdout } = await exec('tar', ['-tzf', installed.tarballs[`@runrelay/${p}`]!])
      const files = stdout.trim().split('\n').map((f) => f.replace(/^package\//, ''))
      expect(files.filter((f) => !f.startsWith('dist/') && !['package.json', 'README.md', 'LICENSE'].includes(f)), p).toEqual([])
      expect(files, p).toEqual(expect.arrayContaining(['README.md', 'LICENSE']))
      expect(files, p).toContain('dist/index.d.ts')
      expect(files, p).toContain('dist/index.js.map')
    }
  })
})

describe('server rendering', () => {
  it('importing every package touches no window, and rendering on a server (React, Vue; Svelte stores) opens no connection and shows `connecting`', async () => {
    // Node 22 has a global WebSocket: it is replaced by one that fails loudly if anything connects.
    const code = `
      globalThis.WebSocket = class { constructor() { throw new Error('a WebSocket was opened during server rendering') } }
      const mods = await Promise.all(['client', 'react', 'vue', 'svelte', 'elements', 'elements/define'].map((p) => import('@runrelay/' + p)))
      const { createElement } = await import('react')
      const { renderToString } = await import('react-dom/server')
      const { useRun, useRuns } = mods[1]
      const App = () => { const { run, state } = useRun('run_x', { url: 'http://127.0.0.1:9' }); const { runs } = useRuns({}, { url: 'http://127.0.0.1:9' }); return createElement('p', null, (run.status ?? 'pending') + ' ' + state + ' ' + runs.length) }
      // Vue's composables and Svelte's stores the same way: their initial value, nothing opened.
      const vue = await import('vue')
      const { renderToString: vueToString } = await import('vue/server-renderer')
      const VueApp = vue.defineComponent(() => { const view = mods[2].useRun('run_x', { url: 'http://127.0.0.1:9' }); const list = mods[2].useRuns({}, { url: 'http://127.0.0.1:9' }); return () => vue.h('p', (view.value.run.status ?? 'pending') + ' ' + view.value.state + ' ' + list.value.runs.length) })
      const { get } = await import('svelte/store')
      const svelte = get(mods[3].runStore({ url: 'http://127.0.0.1:9', runId: 'run_x' })).state + ' ' + get(mods[3].runsStore({ url: 'http://127.0.0.1:9' })).state
      console.log(JSON.stringify({ html: renderToString(createElement(App)), vue: await vueToString(vue.createSSRApp(VueApp)), svelte, window: typeof window, exports: mods.map((m) => Object.keys(m).length) }))`
    const { stdout } = await exec(scriptCommand('node', installed.dir)![0], ['--input-type=module', '-e', code], { cwd: installed.dir })
    const out = JSON.parse(stdout.trim().split('\n').at(-1)!)
    expect(out.window).toBe('undefined')
    // Hooks start at `connecting` (they will connect in the browser), and open nothing on the server.
    expect(out.html).toBe('<p>pending connecting 0</p>')
    expect(out.vue).toBe('<p>pending connecting 0</p>')
    expect(out.svelte).toBe('connecting connecting')
    expect(out.exports.every((n: number) => n > 0)).toBe(true)
  })
})

describe('script examples', () => {
  for (const runtime of ['node20', 'node', 'deno', 'bun'] as const) {
    it.runIf(scriptCommand(runtime, ROOT))(`${runtime === 'node' ? 'Node 22' : runtime === 'node20' ? 'Node 20 (with ws)' : runtime}: trigger with a trigger token, follow live to completed`, async () => {
      const [cmd, args] = scriptCommand(runtime, installed.dir)!
      const { stdout, ms } = await exec(cmd, args, { cwd: installed.dir, env: await env(), timeoutMs: 60_000 })
      const result = JSON.parse(stdout.trim().split('\n').at(-1)!)
      expect(result.status).toBe('completed')
      expect(result.outputs).toEqual(['step-1', 'step-2', 'step-3'])
      expect(result.events).toBeGreaterThanOrEqual(4)
      figures[`${runtime}Ms`] = ms
    }, 90_000)
  }

  it('a Worker (real workerd) triggers a run and waits for it over WebSocket', async () => {
    const started = Date.now()
    const result = await runWorker(installed.dir, { url: server.url, token: await demo.triggerToken(), workflow: demo.workflowId }) as { status: string; run: string }
    expect(result.status).toBe('completed')
    expect(result.run).toMatch(/^run_/)
    figures.workerMs = Date.now() - started
  }, 90_000)
})

describe.runIf(haveBrowser)('browser examples in Chromium', () => {
  for (const app of ['react', 'vue', 'svelte'] as const) {
    it(`${app}: a button starts a run with a trigger token; status, outputs and the list update live`, async () => {
      const started = Date.now()
      const dist = await built(app)
      figures[`${app}BuildMs`] = Date.now() - started
      const site = await serveStatic(dist)
      const page = await browser!.newPage()
      const errors: string[] = []
      page.on('pageerror', (e) => errors.push(e.message))
      try {
        await page.goto(`${site.url}/?${new URLSearchParams({ url: server.url, token: await demo.triggerToken(), workflow: demo.workflowId })}`)
        await page.getByTestId('start').click()
        await page.getByTestId('done').waitFor({ timeout: 20_000 })
        expect(await page.getByTestId('status').textContent()).toBe('completed')
        expect(await page.getByTestId('outputs').textContent()).toBe('step-1, step-2, step-3')
        await page.getByTestId('runs').getByText(/: completed$/).waitFor({ timeout: 5_000 })
        await page.screenshot({ path: join(SHOTS, `sdk-${app}.png`), fullPage: true })
        expect(errors).toEqual([])
      } finally {
        await page.close()
        await site.close()
      }
      figures[`${app}Ms`] = Date.now() - started
    }, 120_000)
  }

  // The same page (the examples' `hooks` view, one test id per figure) and the same assertions for
  // each binding: React's hooks, Vue's composables, Svelte's stores.
  for (const app of ['react', 'vue', 'svelte'] as const) it(`${app} hooks from the tarball: one socket per run across components, throttleMs, onComplete, stop(), enabled, state starts at connecting; a refused trigger never throws`, async () => {
    const dist = await built(app)
    const site = await serveStatic(dist)
    const page = await browser!.newPage()
    const errors: string[] = []
    page.on('pageerror', (e) => errors.push(e.message))
    const sockets: string[] = []
    page.on('websocket', (ws) => sockets.push(new URL(ws.url()).pathname))
    const text = (id: string) => page.getByTestId(id).textContent()
    try {
      await page.goto(`${site.url}/?${new URLSearchParams({ view: 'hooks', url: server.url, token: await demo.triggerToken(), workflow: demo.workflowId })}`)
      // A refused token: the promise resolves to undefined, the reason is in `error`, nothing is thrown.
      await page.getByTestId('refused').click()
      await expect.poll(() => text('refused-outcome')).toBe('undefined')
      expect(await text('refused-error')).not.toBe('')
      await page.getByTestId('start').click()
      await page.getByTestId('a-state').waitFor()
      expect(await text('a-first')).toBe('connecting')
      expect(await text('disabled-state')).toBe('closed')
      await expect.poll(() => text('a-events'), { timeout: 10_000 }).not.toBe('0')
      await page.getByTestId('c-stop').click()
      await expect.poll(() => text('c-state')).toBe('closed')
      const stoppedAt = await text('c-events')
      await expect.poll(() => text('a-status'), { timeout: 20_000 }).toBe('completed')
      await expect.poll(() => text('b-status')).toBe('completed')
      // Typed from the schema and shown: the result's steps; onComplete once per component.
      expect(await text('a-steps')).toBe('3')
      expect(await text('a-completions')).toBe('1')
      expect(await text('b-completions')).toBe('1')
      expect(await text('c-completions')).toBe('0')
      expect(await text('c-events')).toBe(stoppedAt)
      expect(await text('b-events')).toBe(await text('a-events'))
      // Throttled: b re-rendered less often than a for the same events.
      expect(Number(await text('b-renders'))).toBeLessThan(Number(await text('a-renders')))
      // Enabling a hook for the same run joins the shared subscription (its final state at once).
      await page.getByTestId('enable').click()
      await expect.poll(() => text('disabled-status')).toBe('completed')
      const runSockets = sockets.filter((p) => p.startsWith('/v1/runs/'))
      expect(runSockets, `sockets: ${sockets.join(' ')}`).toHaveLength(1)
      expect(errors).toEqual([])
      await page.screenshot({ path: join(SHOTS, `sdk-${app}-hooks.png`), fullPage: true })
    } finally {
      await page.close()
      await site.close()
    }
  }, 120_000)

  it('html: one script tag (/embed.js) and a token show a live run under a strict CSP', async () => {
    const token = await demo.readToken()
    const runId = await demo.trigger()
    const site = await serveStatic(join(installed.dir, 'html'), (html) => fillHtml(html, { url: server.url, token, runId }))
    const page = await browser!.newPage()
    const problems: string[] = []
    page.on('pageerror', (e) => problems.push(e.message))
    page.on('console', (m) => { if (m.type() === 'error') problems.push(m.text()) })
    try {
      await page.goto(`${site.url}/`)
      // Playwright's CSS locators pierce the elements' shadow roots.
      await page.locator('runrelay-run [part=status]').getByText('completed').waitFor({ timeout: 20_000 })
      await page.locator('runrelay-runs [part=row]').filter({ hasText: runId }).getByText('completed').waitFor({ timeout: 5_000 })
      // Styled by a constructed stylesheet, which the page's CSP (no style-src) lets through.
      const bg = await page.locator('runrelay-run [part=status]').evaluate((el) => getComputedStyle(el).backgroundColor)
      expect(bg).toBe('rgb(218, 251, 225)')
      await page.screenshot({ path: join(SHOTS, 'sdk-html.png'), fullPage: true })
      expect(problems).toEqual([])
    } finally {
      await page.close()
      await site.close()
    }
  }, 60_000)
})
