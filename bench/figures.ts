/**
 * `npm run bench -- figures`: the figures the tests measure while proving behaviour (restart and
 * takeover times, delivery counts, bundle and client sizes, SDK build and install times), which a
 * normal test run does not print. Runs the lanes that measure them with RUNRELAY_FIGURES=1 and
 * collects their `[figures]` lines and test-artifacts/reliability.json. Opt-in: it is a test run.
 */
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const LANES = (process.env.BENCH_FIGURES_LANES ?? 'api,runtimes,cluster,release').split(',')

/** Runs the lanes with figures on; returns the printed figures and the recorded reliability figures. */
export async function figures(details: Record<string, unknown>): Promise<void> {
  const args = ['vitest', 'run', ...LANES.flatMap((l) => ['--project', l])]
  const lines: string[] = []
  const code = await new Promise<number | null>((resolve) => {
    const child = spawn('npx', args, { cwd: ROOT, env: { ...process.env, RUNRELAY_FIGURES: '1' }, stdio: ['ignore', 'pipe', 'inherit'] })
    let rest = ''
    child.stdout!.on('data', (d: Buffer) => {
      const parts = (rest + d.toString()).split('\n')
      rest = parts.pop() ?? ''
      for (const l of parts) if (l.includes('[figures]')) { lines.push(l.trim()); console.log(`  ${l.trim()}`) }
    })
    child.on('close', resolve)
  })
  let reliability: unknown
  try { reliability = JSON.parse(readFileSync(`${ROOT}test-artifacts/reliability.json`, 'utf8')) } catch { /* none written */ }
  details.figures = { lanes: LANES, exitCode: code, printed: lines, reliability }
  if (code !== 0) throw new Error(`the test lanes failed (exit ${code}): the figures are incomplete`)
}
