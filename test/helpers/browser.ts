import { existsSync } from 'node:fs'
import { chromium, type Browser } from 'playwright-core'

/** Debian's Chromium, or CHROMIUM_PATH. */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

/**
 * Whether Chromium is here. Without it CI fails at once (the browser tests must run there);
 * elsewhere `what` is skipped with a warning that says how to install it.
 */
export function haveChromium(what: string): boolean {
  const have = existsSync(CHROMIUM)
  if (!have && process.env.CI) throw new Error(`CI is set but no Chromium at ${CHROMIUM}: apt-get install -y chromium`)
  if (!have) console.warn(`${what} skipped: no Chromium at ${CHROMIUM} (apt-get install -y chromium, or set CHROMIUM_PATH)`)
  return have
}

/** Headless Chromium for the page tests: no sandbox, no GPU, nothing fetched in the background. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    timeout: 20_000,
  })
}
