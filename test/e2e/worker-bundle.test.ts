// The Worker bundle stays small: wrangler's own build (deploy --dry-run) of wrangler.toml,
// minified, must fit the budget, and leave out what the Worker does not use.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { logFigures } from '../helpers/figures.ts'

// 700 until issue 23: typed inputs (variables_schema) need a JSON Schema validator that runs
// on Workers, @cfworker/json-schema, 22.6 KiB minified (the bundle went from ~697 to ~720 KiB).
// 730 until the merge of issues 23 and 25: the dashboard's management views (src/http/ui, which
// the Worker serves) add 34 KiB; together they measured 768.8 KiB.
// 780 until issue 26's memory round: the run row copied by one literal of its 36 columns
// (db/runs.ts copyRunRow) and the group commits' size classes took it to 780.8 KiB.
const BUDGET_KIB = 784
const root = join(import.meta.dirname, '..', '..')
const outdir = mkdtempSync(join(tmpdir(), 'runrelay-worker-bundle-'))
afterAll(() => rmSync(outdir, { recursive: true, force: true }))

/** Source files that import zod's `z` by name: esbuild then keeps all of zod (locales included). */
function namedZodImports(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts') && statSync(join(dir, f)).isFile())
    .filter((f) => /^import \{[^}]*\bz\b[^}]*\} from 'zod'/m.test(readFileSync(join(dir, f), 'utf8')))
}

describe('Worker bundle', () => {
  it(`wrangler deploy --dry-run builds at most ${BUDGET_KIB} KiB, without zod's locales or drizzle's other dialects`, () => {
    execFileSync('npx', ['wrangler', 'deploy', '--dry-run', '--outdir', outdir, '--metafile', join(outdir, 'meta.json')], {
      cwd: root, stdio: 'pipe', timeout: 120_000,
      env: { ...process.env, WRANGLER_SEND_METRICS: 'false', CLOUDFLARE_CF_FETCH_ENABLED: 'false' },
    })
    const kib = statSync(join(outdir, 'index.js')).size / 1024
    const meta = JSON.parse(readFileSync(join(outdir, 'meta.json'), 'utf8')) as { outputs: Record<string, { inputs?: Record<string, { bytesInOutput: number }> }> }
    // What ended up in the bundle: modules that contribute bytes (tree-shaken ones count 0).
    const inputs = Object.values(meta.outputs).flatMap((o) => Object.entries(o.inputs ?? {}).filter(([, v]) => v.bytesInOutput > 0).map(([f]) => f))
    // drizzle-orm's own sql.js and relations.js import a few pg-core modules (isPgEnum, about
    // 7 KiB); its pg query builders, MySQL, SingleStore and Gel must not come along.
    const drizzleCoreAllowed = /pg-core\/(columns\/(common|enum)|foreign-keys|unique-constraint|utils\/array|table|primary-keys)\.js$/
    const unwanted = inputs.filter((f) => (/zod\/v4\/locales\/(?!en\.js)|drizzle-orm\/(pg|mysql|singlestore|gel)-core\//.test(f)) && !drizzleCoreAllowed.test(f))
    logFigures('Worker bundle', `${kib.toFixed(1)} KiB minified (budget ${BUDGET_KIB} KiB), ${inputs.length} modules`)
    expect(unwanted, 'modules the Worker does not use').toEqual([])
    expect(kib, `Worker bundle ${kib.toFixed(1)} KiB is over the ${BUDGET_KIB} KiB budget`).toBeLessThanOrEqual(BUDGET_KIB)
  }, 150_000)

  it("source imports zod as a namespace (import * as z), which lets the bundler drop what is unused", () => {
    expect(namedZodImports(join(root, 'src')), "use `import * as z from 'zod'`").toEqual([])
  })
})
