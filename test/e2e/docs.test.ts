import { mkdirSync } from 'node:fs'
import type { Browser, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { haveChromium, launchChromium } from '../helpers/browser.ts'
import { startTestServer, type TestServer } from '../helpers/server.ts'

// /docs in real headless Chromium at a phone's width and a desktop's: nothing wider than the
// viewport, no script errors, no CSP violations. Screenshots stay in test-artifacts/ for review.
const haveBrowser = haveChromium('/docs browser tests')

const ARTIFACTS = 'test-artifacts'
const SIZES = [
  { name: 'phone', width: 390, height: 844 },
  { name: 'desktop', width: 1440, height: 900 },
] as const

describe.skipIf(!haveBrowser)('/docs in Chromium', () => {
  let server: TestServer
  let browser: Browser

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true })
    server = await startTestServer()
    browser = await launchChromium()
  }, 40_000)
  afterAll(async () => {
    await browser?.close()
    await server?.stop()
  })

  /** A page that records console errors, uncaught errors and CSP violations. */
  const open = async (viewport: { width: number; height: number }) => {
    const page = await browser.newPage({ viewport })
    page.setDefaultTimeout(15_000)
    const problems: string[] = []
    page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`) })
    page.on('pageerror', (e) => problems.push(`pageerror: ${String(e)}`))
    await page.addInitScript(() => {
      document.addEventListener('securitypolicyviolation', (e) => console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`))
    })
    return { page, problems }
  }

  /** How far the widest element reaches past the viewport, and which elements do. */
  const overflow = (page: Page) => page.evaluate(() => {
    const vw = document.documentElement.clientWidth
    const offenders: string[] = []
    for (const el of Array.from(document.querySelectorAll('body *'))) {
      const r = el.getBoundingClientRect()
      if (r.width === 0 || r.right <= vw + 0.5) continue
      // Content inside a box that scrolls sideways on its own does not widen the page.
      let scroller = el.parentElement
      while (scroller && getComputedStyle(scroller).overflowX === 'visible') scroller = scroller.parentElement
      if (scroller && scroller !== document.body && scroller !== document.documentElement) continue
      offenders.push(`${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''}${el.className ? `.${String(el.className).split(' ')[0]}` : ''} right=${Math.round(r.right)}`)
    }
    return { viewport: vw, documentWidth: document.documentElement.scrollWidth, bodyWidth: document.body.scrollWidth, offenders: offenders.slice(0, 10) }
  })

  for (const size of SIZES) {
    it(`reads at ${size.width} px: no horizontal overflow, operations open, no errors or CSP violations`, async () => {
      const { page, problems } = await open(size)
      await page.goto(`${server.url}/docs`)
      await page.locator('details.op').first().waitFor()
      expect(await page.locator('details.op').count()).toBeGreaterThan(50)
      await page.screenshot({ path: `${ARTIFACTS}/docs-${size.width}.png` })
      const fits = async () => {
        const o = await overflow(page)
        expect(o.offenders).toEqual([])
        expect(o.documentWidth).toBeLessThanOrEqual(size.width)
        expect(o.bodyWidth).toBeLessThanOrEqual(size.width)
      }
      await fits()

      // Open the widest operations: long paths, headers, a request body, stream answers.
      for (const id of ['post-v1-workflows-id-runs', 'get-v1-runs-id-stream', 'get-v1-connections-id-proxy-path']) {
        const op = page.locator(`details#${id}`)
        await op.locator('summary').click()
        await expect.poll(() => op.getAttribute('open')).not.toBeNull()
      }
      const trigger = page.locator('details#post-v1-workflows-id-runs')
      const text = await trigger.textContent()
      expect(text).toContain('Idempotency-Key')
      expect(text).toContain('Idempotent-Replayed')
      expect(text).toContain('used with a different request')
      expect(text).toContain('runtime_variables')
      expect(await page.locator('details#get-v1-runs-id-stream').textContent()).toContain('text/event-stream')
      await trigger.scrollIntoViewIfNeeded()
      await page.screenshot({ path: `${ARTIFACTS}/docs-${size.width}-open.png` })

      await fits()
      await trigger.screenshot({ path: `${ARTIFACTS}/docs-${size.width}-trigger.png` })
      expect(problems).toEqual([])
      await page.close()
    }, 60_000)
  }
})
