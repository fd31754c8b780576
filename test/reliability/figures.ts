import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

const DIR = join(process.cwd(), 'test-artifacts')
const PARTS = join(DIR, 'reliability')

/**
 * Record the figures a reliability test measured. Each test file writes its own section
 * (test-artifacts/reliability/<section>.json, so files running in parallel never clobber
 * each other) and the merged test-artifacts/reliability.json is rebuilt from all sections.
 */
export function recordFigures(section: string, figures: Record<string, unknown>): void {
  mkdirSync(PARTS, { recursive: true })
  let current: Record<string, unknown> = {}
  try { current = JSON.parse(readFileSync(join(PARTS, `${section}.json`), 'utf8')) } catch { /* first write */ }
  writeFileSync(join(PARTS, `${section}.json`), JSON.stringify({ ...current, ...figures, recorded_at: new Date().toISOString() }, null, 2) + '\n')
  const merged: Record<string, unknown> = { node: process.version, platform: `${process.platform}/${process.arch}` }
  for (const f of readdirSync(PARTS).filter((n) => n.endsWith('.json')).sort()) {
    try { merged[f.replace(/\.json$/, '')] = JSON.parse(readFileSync(join(PARTS, f), 'utf8')) } catch { /* being written */ }
  }
  writeFileSync(join(DIR, 'reliability.json'), JSON.stringify(merged, null, 2) + '\n')
}
