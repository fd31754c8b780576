/**
 * The "detection" bench case: how many upstream requests a run costs and how late a change is
 * seen, for runrelay's adaptive polling against a fixed 1 s poller, a fixed 5 s poller and the
 * exponential backoff. Run durations are log-normal (sigma 0.5) with medians of 30 s, 2 min and
 * 10 min; each run goes running at 10 % of its duration, reports progress at 50 % and ends.
 *
 * Time is virtual (a discrete-event replay), which is what keeps an hour of polling bounded: the
 * strategies are the very functions the watcher calls (`pollDelay`, `nextPollDelay` with a model
 * fitted by `fitDurations` to 200 earlier runs of the same distribution), and a poll sees every
 * change that happened before it. Delay is upstream change → the poll that sees it; what the
 * subscriber adds on top is the fan-out case's delivery latency (milliseconds).
 */
import { pollDelay } from '../src/core/backoff.ts'
import { PollPolicy } from '../src/core/domain.ts'
import { fitDurations, nextPollDelay, type DurationModel } from '../src/core/poll-planner.ts'

const SIGMA = 0.5
const HISTORY = 200
const RUNS = 500

/** A seeded uniform generator (mulberry32): every bench run replays the same runs. */
function seeded(seed: number): () => number {
  let a = seed
  return () => { a = (a + 0x6d2b79f5) | 0; let t = Math.imul(a ^ (a >>> 15), 1 | a); t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t; return ((t ^ (t >>> 14)) >>> 0) / 4294967296 }
}
const lognormal = (random: () => number, medianMs: number) => medianMs * Math.exp(SIGMA * Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random()))

type Planner = (elapsedMs: number, unchangedPolls: number, random: () => number) => number
interface Outcome { requests: number; terminalDelays: number[]; changeDelays: number[] }

/** Replay one run: poll from the trigger until the terminal change is seen. */
function replay(durationMs: number, plan: Planner, random: () => number, out: Outcome): void {
  const changes = [0.1 * durationMs, 0.5 * durationMs, durationMs]
  const policyFirst = plan(0, 0, random) // the first poll after the trigger
  let t = policyFirst
  let seen = 0
  let unchanged = 0
  for (let guard = 0; guard < 100_000; guard++) {
    out.requests++
    let changed = false
    while (seen < changes.length && changes[seen]! <= t) {
      out.changeDelays.push(t - changes[seen]!)
      if (seen === changes.length - 1) out.terminalDelays.push(t - changes[seen]!)
      seen++
      changed = true
    }
    if (seen === changes.length) return
    unchanged = changed ? 0 : unchanged + 1
    t += plan(t, unchanged, random)
  }
}

const pct = (xs: number[], p: number) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]! }

export interface DetectionRow { median: string; strategy: string; requestsPerRun: number; terminalP50: number; terminalP95: number; changeP50: number; changeP95: number }

/** Every strategy over the same runs, for each median duration. */
export function detection(): DetectionRow[] {
  const policy = PollPolicy.parse({ firstIntervalMs: 1_000, maxIntervalMs: 60_000, deadlineMs: 7 * 24 * 3_600_000 })
  const rows: DetectionRow[] = []
  for (const [label, medianMs] of [['30 s', 30_000], ['2 min', 120_000], ['10 min', 600_000]] as const) {
    const history = seeded(1)
    const model: DurationModel = fitDurations(Array.from({ length: HISTORY }, () => lognormal(history, medianMs)))!
    const strategies: Record<string, Planner> = {
      'fixed 1 s': () => 1_000,
      'fixed 5 s': () => 5_000,
      'backoff (no history)': (_t, unchanged, random) => pollDelay(policy, unchanged, random),
      'runrelay adaptive': (t, unchanged, random) => nextPollDelay(policy, model, t, unchanged, random),
    }
    for (const [strategy, plan] of Object.entries(strategies)) {
      const durations = seeded(2) // the same runs for every strategy
      const jitter = seeded(3)
      const out: Outcome = { requests: 0, terminalDelays: [], changeDelays: [] }
      for (let i = 0; i < RUNS; i++) replay(lognormal(durations, medianMs), plan, jitter, out)
      rows.push({
        median: label, strategy, requestsPerRun: out.requests / RUNS,
        terminalP50: pct(out.terminalDelays, 50), terminalP95: pct(out.terminalDelays, 95),
        changeP50: pct(out.changeDelays, 50), changeP95: pct(out.changeDelays, 95),
      })
    }
  }
  return rows
}
