import { build } from 'esbuild'
import { gzipSync } from 'node:zlib'
import { describe, expect, it } from 'vitest'
import { logFigures } from '../helpers/figures.ts'

/** The size budget of @runrelay/client for subscribe + resume (what a page that shows a live run ships). */
export const CLIENT_BUDGET_BYTES = 6 * 1024

/** min+gzip bytes of a browser bundle that imports `names` from the client package's source. */
async function minGzip(names: string[]): Promise<number> {
  const out = await build({
    stdin: { contents: `export { ${names.join(', ')} } from './packages/client/src/index.ts'`, resolveDir: process.cwd(), loader: 'ts' },
    bundle: true, minify: true, format: 'esm', platform: 'browser', write: false, treeShaking: true, target: 'es2022',
  })
  return gzipSync(out.outputFiles[0]!.contents, { level: 9 }).length
}

describe('@runrelay/client size', () => {
  it(`subscribe and resume fit in ${CLIENT_BUDGET_BYTES} bytes min+gzip`, async () => {
    const subscribe = await minGzip(['subscribeRun', 'subscribeFeed', 'waitForCompletion'])
    const snapshot = await minGzip(['watchRun', 'watchRuns', 'triggerRun'])
    // Everything, with what the React, Vue and Svelte bindings ship of it (the shared run subscription and the throttle).
    const all = await minGzip(['subscribeRun', 'watchRun', 'watchRuns', 'triggerRun', 'foldRun', 'subscribeFeed', 'waitForCompletion', 'followRun', 'followRuns', 'acquireRun', 'throttled'])
    logFigures('@runrelay/client min+gzip', `subscribe+resume ${subscribe} B, run snapshots ${snapshot} B, everything ${all} B (budget ${CLIENT_BUDGET_BYTES} B)`)
    expect(subscribe).toBeLessThanOrEqual(CLIENT_BUDGET_BYTES)
    expect(all).toBeLessThanOrEqual(CLIENT_BUDGET_BYTES)
  })
})
