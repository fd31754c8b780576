import { pollDelay } from './backoff.ts'
import type { PollPolicy } from './domain.ts'

/**
 * How long a workflow's runs take, learned from its own finished runs: a log-normal fitted to
 * their durations (trigger → terminal status). Log-normal because run times are products of
 * many factors (queue wait, input size, model speed), and a two-parameter fit stays stable
 * with a few dozen samples where an empirical distribution would be a staircase.
 */
export interface DurationModel {
  /** Mean and standard deviation of ln(duration in ms). */
  mu: number
  sigma: number
  samples: number
}

/** Fewer finished runs than this: no model, the exponential backoff plans alone. */
export const MIN_SAMPLES = 10
/** The durations a model is fitted to: the newest of a workflow's finished runs. */
export const MAX_SAMPLES = 200
/**
 * Where polling is dense: from the duration this share of the workflow's runs had ended by, to
 * the one nearly all had. Polling every first interval over that stretch detects the end of
 * three runs in four about as fast as a poller fixed at the first interval, for a fraction of
 * its requests (the stretch before it is skipped in a few long steps).
 */
export const DENSE_FROM = 0.25
export const DENSE_UNTIL = 0.995
/**
 * Outside the dense stretch: the chance, given the run is still going, that it ends before the
 * next poll. Before the stretch a step never jumps past its start.
 */
export const STEP_PROBABILITY = 0.1

/** Fit a duration model, or undefined while there are too few (or degenerate) samples. */
export function fitDurations(durationsMs: number[]): DurationModel | undefined {
  const logs = durationsMs.filter((d) => d > 0 && Number.isFinite(d)).map(Math.log)
  if (logs.length < MIN_SAMPLES) return undefined
  const mu = logs.reduce((a, b) => a + b, 0) / logs.length
  const variance = logs.reduce((a, b) => a + (b - mu) ** 2, 0) / (logs.length - 1)
  // Identical durations (a fake, a cache) would make every gap zero: keep a little spread.
  return { mu, sigma: Math.max(Math.sqrt(variance), 0.05), samples: logs.length }
}

/**
 * Delay before the next poll of a run `elapsedMs` after its trigger. With a model: every first
 * interval inside the stretch where this workflow's runs usually end (DENSE_FROM..DENSE_UNTIL of
 * its durations); before and after it, the time by which the run, still going now, would have
 * ended with probability STEP_PROBABILITY. Always within the policy's first and max interval (the
 * vendor's guidance lives there), with ±10 % jitter outside the dense stretch so runs started
 * together spread out. Without a model, or with adaptive polling off: the exponential backoff.
 */
export function nextPollDelay(policy: PollPolicy, model: DurationModel | undefined, elapsedMs: number, unchangedPolls: number, random: () => number): number {
  if (!model || policy.adaptive === false) return pollDelay(policy, unchangedPolls, random)
  const t = Math.max(elapsedMs, 1)
  const quantile = (q: number) => Math.exp(model.mu + model.sigma * normalQuantile(q))
  const denseFrom = quantile(DENSE_FROM)
  if (t >= denseFrom && t < quantile(DENSE_UNTIL)) return policy.firstIntervalMs
  const z = (Math.log(t) - model.mu) / model.sigma
  // Past every run this workflow has had (4 sigma), the model has nothing left to say: the cap.
  if (z > 4) return policy.maxIntervalMs
  // Worked on the survival side (still going), where the tail keeps its precision.
  const until = Math.exp(model.mu - model.sigma * normalQuantile(normalCdf(-z) * (1 - STEP_PROBABILITY)))
  let gap = (until - t) * (0.9 + 0.2 * random())
  if (t < denseFrom) gap = Math.min(gap, denseFrom - t)
  return Math.round(Math.min(policy.maxIntervalMs, Math.max(policy.firstIntervalMs, gap)))
}

/** Standard normal CDF (Abramowitz–Stegun 7.1.26 on erf; error < 1.5e-7). */
function normalCdf(z: number): number {
  const x = Math.abs(z) / Math.SQRT2
  const t = 1 / (1 + 0.3275911 * x)
  const erf = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-x * x)
  return z >= 0 ? (1 + erf) / 2 : (1 - erf) / 2
}

/** Standard normal quantile (Acklam's rational approximation; relative error < 1.2e-9). */
function normalQuantile(p: number): number {
  const a = [-39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716, 2.506628277459239]
  const b = [-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572]
  const c = [-0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783]
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416]
  const low = 0.02425
  if (p <= 0) return -Infinity
  if (p >= 1) return Infinity
  if (p < low) {
    const q = Math.sqrt(-2 * Math.log(p))
    return (((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) / ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1)
  }
  if (p > 1 - low) {
    const q = Math.sqrt(-2 * Math.log(1 - p))
    return -(((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) / ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1)
  }
  const q = p - 0.5
  const r = q * q
  return (((((a[0]! * r + a[1]!) * r + a[2]!) * r + a[3]!) * r + a[4]!) * r + a[5]!) * q / (((((b[0]! * r + b[1]!) * r + b[2]!) * r + b[3]!) * r + b[4]!) * r + 1)
}
