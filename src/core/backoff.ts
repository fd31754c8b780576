import type { PollPolicy } from './domain.ts'
import type { Clock } from './ports.ts'

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

/**
 * The clock's time once it reached `at`, for a tick on time but a few ms early (a host timer
 * starting a burst): a poll may come early, a scheduled run's trigger never leaves before its
 * time. A timer may end early by as long as its turn had run (Node's loop clock is read at the
 * turn's start), hence a few rounds; bounded, for a clock that does not move (tests).
 */
export async function notBefore(clock: Clock, at: number, now: number): Promise<number> {
  for (let round = 0; round < 3 && at > now; round++) {
    await new Promise((resolve) => setTimeout(resolve, at - now))
    now = clock.now()
  }
  return now
}
