import { chromium, type Browser } from 'playwright-core'
import { CHROMIUM, needTool } from './tools.ts'

export { CHROMIUM }

/**
 * Whether Chromium is here. Without it CI fails at once (the browser tests must run there);
 * elsewhere `what` is skipped with a warning that says how to install it.
 */
export function haveChromium(what: string): boolean {
  return needTool('chromium', what)
}

/** Headless Chromium for the page tests: no sandbox, no GPU, nothing fetched in the background. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    timeout: 20_000,
  })
}
