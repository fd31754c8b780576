/**
 * `npm run lint:api`: the API contract as a client generator meets it. Lints /openapi.json with
 * Redocly (recommended rules) and Spectral (spectral:oas), and validates /asyncapi.json with the
 * AsyncAPI parser. Any error or warning fails. test/e2e/contract.test.ts runs the same checks.
 */
import { execFile } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)))
const BIN = join(ROOT, 'node_modules', '.bin')
// Redocly would otherwise send usage telemetry and look for updates.
const QUIET_ENV = { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true', NO_COLOR: '1' }

export interface LintReport {
  tool: string
  errors: number
  warnings: number
  /** One line per problem: severity, rule, where, message. */
  problems: string[]
}

const run = async (cmd: string, args: string[]) => {
  try {
    return (await promisify(execFile)(join(BIN, cmd), args, { cwd: ROOT, env: QUIET_ENV, maxBuffer: 64 * 1024 * 1024, timeout: 120_000 })).stdout
  } catch (err) {
    // Both tools exit non-zero when they find problems; their JSON report is still on stdout.
    const out = (err as { stdout?: string }).stdout
    if (out) return out
    throw err
  }
}

/** Redocly CLI with its recommended rules (redocly.yaml). */
export async function redoclyLint(specPath: string): Promise<LintReport> {
  const out = JSON.parse(await run('redocly', ['lint', specPath, '--config', join(ROOT, 'redocly.yaml'), '--format', 'json']))
  const problems = (out.problems ?? []) as Array<{ ruleId: string; severity: string; message: string; location?: Array<{ pointer?: string }> }>
  return {
    tool: 'redocly',
    errors: out.totals?.errors ?? 0,
    warnings: out.totals?.warnings ?? 0,
    problems: problems.map((p) => `${p.severity} ${p.ruleId} ${p.location?.[0]?.pointer ?? ''} ${p.message}`),
  }
}

/** Spectral with the spectral:oas ruleset (.spectral.yaml). */
export async function spectralLint(specPath: string): Promise<LintReport> {
  const out = await run('spectral', ['lint', specPath, '--ruleset', join(ROOT, '.spectral.yaml'), '--format', 'json', '--fail-severity', 'warn', '--quiet'])
  const results = JSON.parse(out.slice(out.indexOf('['))) as Array<{ code: string; severity: number; message: string; path: string[] }>
  return {
    tool: 'spectral',
    errors: results.filter((r) => r.severity === 0).length,
    warnings: results.filter((r) => r.severity === 1).length,
    problems: results.map((r) => `${['error', 'warn', 'info', 'hint'][r.severity]} ${r.code} ${r.path.join('.')} ${r.message}`),
  }
}

/** The AsyncAPI parser's own validation (schema and its built-in ruleset). */
export async function asyncApiValidate(doc: unknown): Promise<LintReport & { document: unknown }> {
  const { Parser } = await import('@asyncapi/parser')
  const { document, diagnostics } = await new Parser().parse(JSON.stringify(doc))
  return {
    tool: 'asyncapi-parser',
    document,
    errors: diagnostics.filter((d) => d.severity === 0).length + (document ? 0 : 1),
    warnings: diagnostics.filter((d) => d.severity === 1).length,
    problems: diagnostics.map((d) => `${['error', 'warn', 'info', 'hint'][d.severity]} ${d.code} ${d.path.join('.')} ${d.message}`),
  }
}

/** Every check over the given documents; files are written under `dir`. */
export async function lintApi(openapi: unknown, asyncapi: unknown, dir: string): Promise<LintReport[]> {
  mkdirSync(dir, { recursive: true })
  const specPath = join(dir, 'openapi.json')
  writeFileSync(specPath, JSON.stringify(openapi, null, 2))
  writeFileSync(join(dir, 'asyncapi.json'), JSON.stringify(asyncapi, null, 2))
  const [redocly, spectral, parsed] = await Promise.all([redoclyLint(specPath), spectralLint(specPath), asyncApiValidate(asyncapi)])
  const { document: _doc, ...asyncReport } = parsed
  return [redocly, spectral, asyncReport]
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { startNode } = await import('../src/runtime/node/main.ts')
  const dataDir = mkdtempSync(join(tmpdir(), 'runrelay-lint-'))
  const started = await startNode({ PORT: '0', HOST: '127.0.0.1', RUNRELAY_DATA_DIR: dataDir, RUNRELAY_ROOT_KEY: 'rr_lint_only_root_key_0123456789', RUNRELAY_LOG: 'silent' })
  try {
    const get = async (path: string) => (await fetch(started.url + path)).json()
    const reports = await lintApi(await get('/openapi.json'), await get('/asyncapi.json'), join(ROOT, 'test-artifacts', 'contract'))
    let failed = false
    for (const r of reports) {
      console.log(`${r.tool}: ${r.errors} errors, ${r.warnings} warnings`)
      for (const p of r.problems) console.log(`  ${p}`)
      failed ||= r.errors + r.warnings > 0
    }
    process.exitCode = failed ? 1 : 0
  } finally {
    await started.stop()
    rmSync(dataDir, { recursive: true, force: true })
  }
}
