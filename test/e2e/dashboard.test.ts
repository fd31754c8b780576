import { mkdirSync } from 'node:fs'
import type { Browser, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { haveChromium, launchChromium } from '../helpers/browser.ts'
import { demoTenant } from '../helpers/live.ts'
import { createTenant, startTestServer, type TestServer } from '../helpers/server.ts'

// The dashboard and the API reference in real headless Chromium against the real server.
const haveBrowser = haveChromium('dashboard browser tests')

const ARTIFACTS = 'test-artifacts'

describe.skipIf(!haveBrowser)('dashboard in Chromium', () => {
  let server: TestServer
  let browser: Browser
  let t: Awaited<ReturnType<typeof demoTenant>>
  let wfA: string, wfB: string
  const consoleErrors: string[] = []

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true })
    server = await startTestServer()
    t = await demoTenant(server)
    wfA = await t.workflow('nightly-report', { durationMs: 2_500, steps: 3, queueMs: 300 })
    wfB = await t.workflow('customer-export', { durationMs: 1_000, steps: 2, outcome: 'failed', queueMs: 0 })
    browser = await launchChromium()
  }, 40_000)
  afterAll(async () => {
    await browser?.close()
    await server?.stop()
  })

  const open = async (viewport = { width: 1280, height: 800 }): Promise<Page> => {
    const page = await browser.newPage({ viewport })
    page.setDefaultTimeout(15_000)
    page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()) })
    page.on('pageerror', (e) => consoleErrors.push(String(e)))
    return page
  }
  const signIn = async (page: Page, credential: string) => {
    await page.goto(server.url + '/')
    await page.fill('#cred', credential)
    await page.click('#signin-btn')
    await page.locator('#signout').waitFor()
  }

  const VIEWPORTS = { desktop: { width: 1440, height: 900 }, phone: { width: 390, height: 844 } } as const
  /** A screenshot of the page at both sizes (kept under test-artifacts/), and no horizontal scrolling on the phone. */
  const shoot = async (page: Page, name: string) => {
    for (const [size, viewport] of Object.entries(VIEWPORTS)) {
      await page.setViewportSize(viewport)
      await page.waitForTimeout(100)
      await page.screenshot({ path: `${ARTIFACTS}/dashboard-${name}-${size}.png`, fullPage: true })
      if (size === 'phone') {
        const wide = await page.evaluate(() => [...document.querySelectorAll('body *')].filter((el) => el.getBoundingClientRect().right > window.innerWidth + 1).slice(0, 5).map((el) => `${el.tagName}#${el.id}.${el.className}`))
        expect(await page.evaluate(() => document.documentElement.scrollWidth), `${name} overflows a phone: ${wide.join(' ')}`).toBeLessThanOrEqual(viewport.width)
      }
    }
    await page.setViewportSize(VIEWPORTS.desktop)
  }
  const rowIds = (page: Page) => page.locator('#runs-body tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-run')))

  it('shows a run triggered through the API and moves it to completed live, without a reload; filters live in the URL', async () => {
    await t.trigger(wfB, { tags: ['team:billing'] })
    const page = await open(VIEWPORTS.desktop)
    await signIn(page, t.key)
    await page.waitForSelector('#runs-body tr')
    await page.waitForSelector('#live.live')
    await page.evaluate(() => { (window as unknown as { __noReload: boolean }).__noReload = true })

    const runId = await t.trigger(wfA, { tags: ['team:reports', 'nightly'] })
    const row = page.locator(`tr[data-run="${runId}"]`)
    await row.waitFor()
    await row.locator('.chip[data-status="running"]').waitFor()
    await row.locator('.chip[data-status="completed"]').waitFor({ timeout: 15_000 })
    await expect.poll(() => row.locator('.c-up').textContent()).toContain('demo-')
    expect(await page.evaluate(() => (window as unknown as { __noReload?: boolean }).__noReload)).toBe(true)
    await shoot(page, 'list')

    // Filtered by workflow B (the URL says so): A's run leaves, a new B run arrives live.
    await page.click(`#f-workflow [data-workflow="${wfB}"]`)
    await row.waitFor({ state: 'detached' })
    expect(decodeURIComponent(new URL(page.url()).hash)).toContain(`workflow=${wfB}`)
    const b = await t.trigger(wfB)
    await page.locator(`tr[data-run="${b}"] .chip[data-status="failed"]`).waitFor({ timeout: 15_000 })
    const bRuns = (await t.client.get(`/v1/runs?workflow_id=${wfB}`)).body.items.map((r: { id: string }) => r.id)
    expect(new Set(await rowIds(page))).toEqual(new Set(bRuns))
    // A reload keeps the view.
    await page.reload()
    await page.locator(`tr[data-run="${b}"]`).waitFor()
    expect(await page.locator(`tr[data-run="${runId}"]`).count()).toBe(0)

    // Several statuses at once, several workflows at once.
    await page.goto(`${server.url}/#/runs?status=completed,failed&workflow=${wfA},${wfB}`)
    await row.waitFor()
    await page.locator(`tr[data-run="${b}"]`).waitFor()
    await page.click('#f-status [data-status="failed"]')
    await page.locator(`tr[data-run="${b}"]`).waitFor({ state: 'detached' })
    await row.waitFor()
    await page.close()
  })

  it('a run that starts and ends while the list loads is shown, with its last status', async () => {
    const page = await open(VIEWPORTS.desktop)
    await signIn(page, t.key)
    await page.waitForSelector('#live.live')
    // Hold the next list answer (fetched, so its rows are from before the run) until the run has
    // ended: every event of the run falls between the list and whatever the page does after it.
    let run = ''
    await page.route('**/v1/runs?*', async (route) => {
      const answer = await route.fetch()
      run = await t.trigger(wfB)
      await expect.poll(async () => (await t.client.get(`/v1/runs/${run}`)).body.finished_at, { timeout: 15_000 }).toBeTruthy()
      await route.fulfill({ response: answer })
    }, { times: 1 })
    await page.click(`#f-workflow [data-workflow="${wfB}"]`)
    await expect.poll(() => run).not.toBe('')
    await page.locator(`tr[data-run="${run}"] .chip[data-status="failed"]`).waitFor({ timeout: 15_000 })
    await page.close()
  })

  it('a run page opens one socket and shows each event once; a hash typed by hand, a link and the back button replace the view', async () => {
    const long = await t.workflow('long-view', { durationMs: 60_000, steps: 2, queueMs: 0 })
    const running = await t.trigger(long)
    const done = await t.trigger(wfB)
    await expect.poll(async () => (await t.client.get(`/v1/runs/${done}`)).body.finished_at, { timeout: 15_000 }).toBeTruthy()
    const history = (await t.client.get(`/v1/runs/${done}/events`)).body.events as unknown[]
    const page = await open(VIEWPORTS.desktop)
    await signIn(page, t.key)
    // Leave the signed-in list first: the browser closes that document's feed socket on unload, but
    // Playwright reports no close for a socket of a document navigated away from, so a socket the
    // list opened after sign-in would count as open for the rest of the test.
    await page.goto('about:blank')
    // Every WebSocket the page opens from here on, and whether it is still open.
    const sockets: Array<{ path: string; open: boolean }> = []
    page.on('websocket', (ws) => { const s = { path: new URL(ws.url()).pathname, open: true }; sockets.push(s); ws.on('close', () => { s.open = false }) })
    const openTo = (path: string) => sockets.filter((s) => s.open && s.path === path).length
    await page.goto(`${server.url}/?fresh#/runs/${done}`) // a full load (the query differs), signed in from this tab's sessionStorage
    await page.locator('#run-error').waitFor({ timeout: 15_000 })
    await expect.poll(() => page.locator('#timeline li').count()).toBe(history.length)
    await page.waitForTimeout(500)
    expect(await page.locator('#timeline li').count()).toBe(history.length)
    expect(sockets.filter((s) => s.path === `/v1/runs/${done}/stream`)).toHaveLength(1)

    // A hash typed by hand: the old view goes, and its socket with it.
    await page.evaluate((id) => { location.hash = `#/runs/${id}` }, running)
    await page.locator('#run-head .chip[data-status="running"]').waitFor({ timeout: 15_000 })
    await expect.poll(() => page.locator('#run-head').count()).toBe(1)
    expect(await page.locator('#run-head h1').textContent()).toBe(running)
    await expect.poll(() => openTo(`/v1/runs/${running}/stream`)).toBe(1)
    // The back button: the finished run again, once.
    await page.goBack()
    await expect.poll(() => page.locator('#run-head h1').allTextContents()).toEqual([done])
    await expect.poll(() => page.locator('#timeline li').count()).toBe(history.length)
    await expect.poll(() => openTo(`/v1/runs/${running}/stream`)).toBe(0)
    // A link: the runs list replaces the run page, one feed socket.
    await page.click('.crumbs a[href="#/runs"]')
    await page.locator('#runs-body tr').first().waitFor()
    expect(await page.locator('#run-head').count()).toBe(0)
    await expect.poll(() => openTo('/v1/stream')).toBe(1)
    expect(sockets.filter((s) => s.open).map((s) => s.path)).toEqual(['/v1/stream'])
    // A filter change replaces the feed: still one socket.
    await page.click(`#f-workflow [data-workflow="${long}"]`)
    await expect.poll(() => new URL(page.url()).hash).toContain('workflow=')
    await page.locator('#live.live').waitFor()
    await page.waitForTimeout(300)
    expect(sockets.filter((s) => s.open).map((s) => s.path)).toEqual(['/v1/stream'])
    await t.client.post(`/v1/runs/${running}/cancel`)
    await page.close()
  })

  it('finds a run by run id, upstream id or tag, and within a time range', async () => {
    const runId = await t.trigger(wfA, { tags: ['findme'] })
    await expect.poll(async () => (await t.client.get(`/v1/runs/${runId}`)).body.upstream_id, { timeout: 10_000 }).toBeTruthy()
    const upstreamId = (await t.client.get(`/v1/runs/${runId}`)).body.upstream_id as string
    const page = await open(VIEWPORTS.desktop)
    await signIn(page, t.key)
    await page.waitForSelector('#runs-body tr')
    for (const q of [runId, upstreamId, 'findme']) {
      await page.fill('#f-q', q)
      await page.click('#f-apply')
      await expect.poll(() => rowIds(page)).toEqual([runId])
    }
    await shoot(page, 'search')
    // A range that ends before the run was created hides it.
    await page.fill('#f-q', '')
    await page.fill('#f-to', '2001-01-01T00:00')
    await page.click('#f-apply')
    await page.locator('#runs-empty').waitFor()
    await page.close()
  })

  it('pages through more than 250 runs with "load more"', async () => {
    const pager = await demoTenant(server, 'pager')
    const wf = await pager.workflow('later')
    const far = new Date(Date.now() + 30 * 86_400_000).toISOString()
    const ids: string[] = []
    for (let i = 0; i < 260; i++) ids.push(await pager.trigger(wf, { scheduled_at: far }))
    const page = await open(VIEWPORTS.desktop)
    await signIn(page, pager.key)
    await expect.poll(() => page.locator('#runs-body tr').count()).toBe(100)
    await page.click('#load-more')
    await expect.poll(() => page.locator('#runs-body tr').count()).toBe(200)
    await page.click('#load-more')
    await expect.poll(() => page.locator('#runs-body tr').count()).toBe(260)
    expect(await page.locator('#load-more').count()).toBe(0)
    const shown = await rowIds(page)
    expect(shown).toEqual([...ids].reverse()) // newest first, each once

    // Filtered to canceled, all pages loaded: a run older than every row that is canceled now
    // joins the list live at its end (it was dropped while the list still thought it had pages below).
    const cancel = async (id: string) => expect((await pager.client.post(`/v1/runs/${id}/cancel`, { reason: 'paging test' })).status).toBe(200)
    for (const id of ids.slice(1, 102)) await cancel(id)
    await page.close()
    const canceled = await open(VIEWPORTS.desktop)
    await signIn(canceled, pager.key)
    await canceled.goto(`${server.url}/#/runs?status=canceled`)
    await expect.poll(() => canceled.locator('#runs-body tr').count()).toBe(100)
    await canceled.click('#load-more')
    await expect.poll(() => canceled.locator('#runs-body tr').count()).toBe(101)
    await expect.poll(() => canceled.locator('#live-text').textContent()).toBe('live')
    await cancel(ids[0]!)
    await expect.poll(async () => (await rowIds(canceled)).at(-1)).toBe(ids[0])
    expect(await rowIds(canceled)).toEqual(ids.slice(0, 102).reverse())
    await canceled.close()
  })

  it('a run page: waterfall, JSON views, errors with the upstream body; trigger, cancel and replay from the page', async () => {
    const page = await open(VIEWPORTS.desktop)
    await signIn(page, t.key)
    await page.waitForSelector('#trigger-btn')
    await page.click('#trigger-btn')
    await page.selectOption('#tr-wf', wfA)
    await page.fill('#tr-vars', '{"durationMs": 20000}')
    await page.fill('#tr-tags', 'manual')
    await page.click('#tr-go')
    const created = page.locator('#runs-body tr .tag', { hasText: 'manual' }).first()
    await created.waitFor()
    await created.click()
    await page.locator('#timeline li').first().waitFor()
    await page.locator('#run-head .chip[data-status="running"]').waitFor()
    page.once('dialog', (d) => d.accept())
    await page.click('#cancel-btn')
    await page.locator('#run-head .chip[data-status="canceled"]').waitFor()
    await page.locator('#timeline li.canceled').first().waitFor()

    const done = await t.trigger(wfA, { variables: { who: 'replay-me' }, tags: ['orig'] })
    await page.goto(`${server.url}/#/runs/${done}`)
    await page.locator('#result-json').waitFor({ timeout: 15_000 })
    expect(await page.locator('#result-json pre').textContent()).toContain('"ok": true')
    await page.locator('#live.finished').waitFor() // a finished run is labelled finished, not offline
    await page.locator('#waterfall rect.ph.running').waitFor()
    expect(await page.locator('#waterfall .phase-list li').count()).toBeGreaterThanOrEqual(2)
    await page.locator('#outputs-json').waitFor()
    await shoot(page, 'run')

    // Replay: a new run, linked to the first, with the same variables and tags.
    await page.click('#replay-btn')
    await page.locator('#replay-of').waitFor()
    expect(await page.locator('#replay-of').textContent()).toBe(done)
    const replayId = decodeURIComponent(new URL(page.url()).hash.replace('#/runs/', ''))
    const replayed = (await t.client.get(`/v1/runs/${replayId}`)).body
    expect(replayed.replay_of).toBe(done)
    expect(replayed.variables).toEqual({ who: 'replay-me' })
    expect(replayed.tags).toContain('orig')

    // A failed run shows its error.
    const failed = await t.trigger(wfB)
    await page.goto(`${server.url}/#/runs/${failed}`)
    await page.locator('#run-error pre').waitFor({ timeout: 15_000 })
    expect(await page.locator('#run-error pre').textContent()).toContain('"code"')
    await page.close()
  })

  it('a workflow page draws its health from the summary', async () => {
    // Settled numbers: no run of the workflow still going while the page and the API are compared.
    await expect.poll(async () => (await t.client.get(`/v1/runs?workflow_id=${wfA}&status=scheduled,queued,running,paused`)).body.items.length, { timeout: 20_000 }).toBe(0)
    const page = await open(VIEWPORTS.desktop)
    await signIn(page, t.key)
    await page.goto(`${server.url}/#/workflows/${wfA}?range=24h`)
    await page.locator('#stat-total').waitFor()
    const to = new Date(Date.now() + 60_000).toISOString()
    const summary = (await t.client.get(`/v1/workflows/${wfA}/summary?from=${new Date(Date.now() - 86_400_000).toISOString()}&to=${to}&bucket=hour`)).body
    expect(await page.locator('#stat-total span').textContent()).toBe(String(summary.total))
    expect(await page.locator('#stat-success span').textContent()).toBe(summary.success_rate === null ? '—' : `${Math.round(summary.success_rate * 100)}%`)
    expect(await page.locator('#chart-runs rect').count()).toBeGreaterThanOrEqual(24)
    await shoot(page, 'workflow')
    await page.click('#range button:has-text("7d")')
    await expect.poll(() => new URL(page.url()).hash).toContain('range=7d')
    await page.close()
  })

  it('an empty tenant is shown how to start, and the demo is one click', async () => {
    const empty = await createTenant(server, 'empty')
    const page = await open(VIEWPORTS.desktop)
    await signIn(page, empty.key)
    await page.locator('#empty-tenant').waitFor()
    expect(await page.locator('#trigger-btn').count()).toBe(0)
    await shoot(page, 'empty')
    await page.click('#demo-btn')
    await page.locator('#trigger-btn').waitFor()
    expect((await empty.client.get('/v1/workflows')).body.items).toHaveLength(1)
    await page.close()
  })

  it('a subscriber token sees its scope, live, with no write buttons; readable on a phone', async () => {
    const runId = await t.trigger(wfA, { tags: ['team:reports'] })
    const token = await t.mint({ workflow_ids: [wfA] })
    const page = await open(VIEWPORTS.phone)
    await signIn(page, token)
    await page.locator(`tr[data-run="${runId}"] .chip[data-status="completed"]`).waitFor({ timeout: 15_000 })
    expect(await page.locator('#trigger-btn').count()).toBe(0)
    const other = await rowIds(page)
    const aRuns = (await t.client.get(`/v1/runs?workflow_id=${wfA}`)).body.items.map((r: { id: string }) => r.id)
    expect(other.every((id) => aRuns.includes(id))).toBe(true)
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390)
    await page.screenshot({ path: `${ARTIFACTS}/dashboard-token-phone.png`, fullPage: true })
    await page.close()
  })

  it('a key without runs:write sees the runs but no trigger, cancel or replay buttons', async () => {
    const long = await t.workflow('long-running', { durationMs: 60_000, steps: 2, queueMs: 0 })
    const runId = await t.trigger(long)
    const reader = (await t.client.post('/v1/keys', { name: 'reader', scopes: ['runs:read', 'workflows:read'] })).body.key as string
    const page = await open()
    await signIn(page, reader)
    await page.locator(`tr[data-run="${runId}"]`).waitFor()
    expect(await page.locator('#trigger-btn').count()).toBe(0)
    await page.goto(`${server.url}/#/runs/${runId}`)
    await page.locator('.chip[data-status="running"]').first().waitFor({ timeout: 15_000 })
    expect(await page.locator('#cancel-btn').count()).toBe(0)
    expect(await page.locator('#replay-btn').count()).toBe(0)
    // The admin key of the same tenant gets them.
    await page.click('#signout')
    await signIn(page, t.key)
    await page.locator('#trigger-btn').waitFor()
    await page.goto(`${server.url}/#/runs/${runId}`)
    await page.locator('#cancel-btn').waitFor()
    await t.client.post(`/v1/runs/${runId}/cancel`)
    await page.close()
  })

  it('/docs renders the OpenAPI document', async () => {
    const page = await open()
    await page.goto(server.url + '/docs')
    await page.locator('details.op').first().waitFor()
    expect(await page.locator('details.op').count()).toBeGreaterThan(20)
    const tokens = page.locator('details#post-v1-tokens')
    await tokens.locator('summary').click()
    expect(await tokens.textContent()).toContain('ttl_seconds')
    // The filter leaves the operations of /v1/tokens… only (minting and revoking them).
    const doc = await (await fetch(`${server.url}/openapi.json`)).json() as { paths: Record<string, Record<string, unknown>> }
    const tokenOps = Object.entries(doc.paths).filter(([path]) => path.startsWith('/v1/tokens')).flatMap(([, ops]) => Object.keys(ops).filter((m) => ['get', 'put', 'post', 'patch', 'delete'].includes(m)))
    expect(tokenOps.length).toBeGreaterThan(1)
    await page.fill('#q', 'tokens')
    await expect.poll(() => page.locator('details.op').count()).toBe(tokenOps.length)
    await page.fill('#q', '')
    await page.locator('details#get-v1-runs summary').click()
    await page.screenshot({ path: `${ARTIFACTS}/docs.png` })
    await page.close()
  })

  it('ran without script errors or CSP violations', () => {
    if (consoleErrors.length) console.error(consoleErrors)
    expect(consoleErrors.filter((e) => !/Failed to load resource/.test(e))).toEqual([])
  })
})
