import type { PollPolicy } from './domain.ts'

/**
 * Delay before the next poll: exponential in the number of polls that saw no change, with
 * full jitter between the first interval and the current cap, so many runs started together
 * spread out instead of polling in lockstep.
 */
export function pollDelay(policy: PollPolicy, unchangedPolls: number, random: () => number): number {
  const cap = Math.min(policy.maxIntervalMs, policy.firstIntervalMs * 2 ** Math.min(unchangedPolls, 30))
  return Math.round(policy.firstIntervalMs + random() * (cap - policy.firstIntervalMs))
}

/** Delay before retrying after a transient failure: "full jitter" (AWS), at least 100 ms. */
export function retryDelay(policy: PollPolicy, attempt: number, random: () => number): number {
  const cap = Math.min(policy.maxIntervalMs, policy.firstIntervalMs * 2 ** Math.min(Math.max(attempt - 1, 0), 30))
  return Math.max(100, Math.round(random() * cap))
}
