import { watchRun, watchRuns, type Live, type RunsView, type RunView, type WatchRunOptions, type WatchRunsOptions } from './live.ts'
import type { RunSnapshot, RunTypes } from './snapshot.ts'

/*
 * What every framework binding (React, Vue, Svelte) does the same way, kept here once: one
 * subscription per run shared by every reader, and renders throttled per reader.
 */

/** A throttled setter: `push` passes a value on, at most one per interval (the latest wins); `cancel` drops a pending one. */
export interface Throttled<V> {
  /** Pass `v` on now if the interval has passed (or `flush`), else once it has. */
  push(v: V, flush?: boolean): void
  cancel(): void
}

/** A setter that lets through at most one update per `ms` (the latest wins); `flush` updates at once. `ms` 0 or undefined: every update. */
export function throttled<V>(set: (v: V) => void, ms: number | undefined): Throttled<V> {
  let last = 0
  let timer: ReturnType<typeof setTimeout> | undefined
  let pending: V
  const fire = () => { timer = undefined; last = Date.now(); set(pending) }
  return {
    push(v, flush = false) {
      pending = v
      if (!ms) return set(v)
      const wait = last + ms - Date.now()
      if (flush || wait <= 0) { clearTimeout(timer); fire() } else if (!timer) timer = setTimeout(fire, wait)
    },
    cancel: () => clearTimeout(timer),
  }
}

interface Shared { live: Live<RunView<any>>; refs: number; closing?: ReturnType<typeof setTimeout> }
const shared = new Map<string, Shared>()

/** A reference on a run's shared subscription: its live view, and `release` (idempotent). */
export interface SharedRun<T extends RunTypes = RunTypes> {
  live: Live<RunView<T>>
  release: () => void
}

/**
 * Take a reference on the run's shared subscription, keyed by (url, token, runId) and opened
 * by the first taker with its options (per-reader callbacks such as `onComplete` belong to
 * `followRun`, not here). The last release closes it on the next tick, so a remount (React
 * StrictMode, a route change that keeps the run on screen) reuses the open socket.
 */
export function acquireRun<T extends RunTypes = RunTypes>(opts: WatchRunOptions): SharedRun<T> {
  const key = `${opts.url ?? ''}\n${opts.token ?? ''}\n${opts.runId}`
  let s = shared.get(key)
  if (!s) { s = { live: watchRun({ ...opts, onComplete: undefined, onError: undefined }), refs: 0 }; shared.set(key, s) }
  const entry = s
  clearTimeout(entry.closing)
  entry.refs++
  let released = false
  return {
    live: entry.live,
    release: () => {
      if (released) return
      released = true
      if (--entry.refs > 0) return
      entry.closing = setTimeout(() => { if (entry.refs === 0 && shared.get(key) === entry) { shared.delete(key); entry.live.close() } }, 0)
    },
  }
}

/** How many runs have an open shared subscription (for tests and devtools). */
export function sharedRunSubscriptions(): number {
  return shared.size
}

/** How one reader follows a run: its render interval, and its completion callback. */
export interface FollowOptions<T extends RunTypes = RunTypes> {
  /** At most one update per this many ms while events stream (a finished run and a connection state other than `open` pass at once). Default 0: every event. */
  throttleMs?: number
  /** Called once, with the final snapshot, when the run ends (also when it had ended before this reader came). */
  onComplete?: (run: RunSnapshot<T>) => void
}

/**
 * Follow a run through its shared subscription: `set` gets the current view at once, then
 * every change (throttled by `throttleMs`); `onComplete` fires once for this reader. Returns
 * the function that stops this reader (and releases its reference).
 */
export function followRun<T extends RunTypes = RunTypes>(opts: WatchRunOptions & FollowOptions<T>, set: (view: RunView<T>) => void): () => void {
  const { throttleMs, onComplete, ...watch } = opts
  const { live, release } = acquireRun<T>(watch)
  let completed = false
  const t = throttled(set, throttleMs)
  const unsubscribe = live.subscribe((v) => {
    const finished = v.run.finished
    t.push(v, finished || v.state !== 'open')
    if (finished && !completed) { completed = true; onComplete?.(v.run) }
  })
  return () => { t.cancel(); unsubscribe(); release() }
}

/** Follow a live list of runs (its own subscription; lists are not shared), throttled like `followRun`. Returns the stop function. */
export function followRuns(opts: WatchRunsOptions & { throttleMs?: number }, set: (view: RunsView) => void): () => void {
  const { throttleMs, ...watch } = opts
  const live = watchRuns(watch)
  const t = throttled(set, throttleMs)
  const unsubscribe = live.subscribe((v) => t.push(v, v.state !== 'open'))
  return () => { t.cancel(); unsubscribe(); live.close() }
}
