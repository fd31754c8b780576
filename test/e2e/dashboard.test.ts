import { existsSync, mkdirSync } from 'node:fs'
import { chromium, type Browser, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { demoTenant } from '../helpers/live.ts'
import { startTestServer, type TestServer } from '../helpers/server.ts'

// The dashboard and the API reference in real headless Chromium against the real server.
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const haveBrowser = existsSync(CHROMIUM)
if (!haveBrowser && process.env.CI) throw new Error(`CI is set but no Chromium at ${CHROMIUM}: apt-get install -y chromium`)
if (!haveBrowser) console.warn(`dashboard browser tests skipped: no Chromium at ${CHROMIUM} (apt-get install -y chromium, or set CHROMIUM_PATH)`)

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
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      timeout: 20_000,
    })
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
  }

  it('shows a run triggered through the API and moves it to completed live, without a reload', async () => {
    // Some history so the table is not empty.
    await t.trigger(wfB, { tags: ['team:billing'] })
    const page = await open()
    await signIn(page, t.key)
    await page.waitForSelector('#runs-body tr')
    await page.waitForSelector('#live.on')
    await page.evaluate(() => { (window as unknown as { __noReload: boolean }).__noReload = true })

    const runId = await t.trigger(wfA, { tags: ['team:reports', 'nightly'] })
    const row = page.locator(`tr[data-run="${runId}"]`)
    await row.waitFor()
    await row.locator('.chip[data-status="running"]').waitFor()
    await row.locator('.chip[data-status="completed"]').waitFor({ timeout: 15_000 })
    await expect.poll(() => row.locator('.c-up').textContent()).toContain('demo-')
    expect(await page.evaluate(() => (window as unknown as { __noReload?: boolean }).__noReload)).toBe(true)
    await page.screenshot({ path: `${ARTIFACTS}/dashboard.png`, fullPage: true })

    // The workflow filter: only B's runs stay, and a new B run arrives live.
    await page.selectOption('#f-workflow', wfB)
    await row.waitFor({ state: 'detached' })
    const b = await t.trigger(wfB)
    await page.locator(`tr[data-run="${b}"] .chip[data-status="failed"]`).waitFor({ timeout: 15_000 })
    const shown = await page.locator('#runs-body tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-run')))
    const bRuns = (await t.client.get(`/v1/runs?workflow_id=${wfB}`)).body.items.map((r: { id: string }) => r.id)
    expect(new Set(shown)).toEqual(new Set(bRuns))
    // The status filter.
    await page.selectOption('#f-workflow', '')
    await page.selectOption('#f-status', 'completed')
    await page.locator(`tr[data-run="${b}"]`).waitFor({ state: 'detached' })
    await row.waitFor()
    await page.selectOption('#f-status', '')
    await page.fill('#f-tag', 'nightly')
    await page.press('#f-tag', 'Enter')
    await expect.poll(() => page.locator('#runs-body tr').count()).toBe(1)
    await page.close()
  })

  it('a run page shows the timeline and result; trigger and cancel from the page', async () => {
    const page = await open()
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
    await page.locator('#timeline li.canceled').waitFor()

    const done = await t.trigger(wfA)
    await page.goto(`${server.url}/#/runs/${done}`)
    await page.locator('#result-json').waitFor({ timeout: 15_000 })
    expect(await page.locator('#result-json').textContent()).toContain('"ok": true')
    await page.screenshot({ path: `${ARTIFACTS}/run.png`, fullPage: true })
    await page.close()
  })

  it('a subscriber token sees its scope, live, with no write buttons; readable on a phone', async () => {
    const runId = await t.trigger(wfA, { tags: ['team:reports'] })
    const token = await t.mint({ workflow_ids: [wfA] })
    const page = await open({ width: 390, height: 844 })
    await signIn(page, token)
    await page.locator(`tr[data-run="${runId}"] .chip[data-status="completed"]`).waitFor({ timeout: 15_000 })
    expect(await page.locator('#trigger-btn').count()).toBe(0)
    const other = await page.locator('#runs-body tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-run')))
    const aRuns = (await t.client.get(`/v1/runs?workflow_id=${wfA}`)).body.items.map((r: { id: string }) => r.id)
    expect(other.every((id) => aRuns.includes(id))).toBe(true)
    // No horizontal scrolling on a phone.
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390)
    await page.screenshot({ path: `${ARTIFACTS}/dashboard-phone.png`, fullPage: true })
    await page.close()
  })

  it('a key without runs:write sees the runs but no trigger or cancel buttons', async () => {
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
    await page.fill('#q', 'tokens')
    await expect.poll(() => page.locator('details.op').count()).toBe(1)
    await page.fill('#q', '')
    await page.locator('details#get-v1-runs summary').click()
    await page.screenshot({ path: `${ARTIFACTS}/docs.png` })
    await page.close()
  })

  it('ran without script errors or CSP violations', () => {
    expect(consoleErrors.filter((e) => !/Failed to load resource/.test(e))).toEqual([])
  })
})
