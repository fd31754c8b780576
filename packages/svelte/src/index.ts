/**
 * @runrelay/svelte: Svelte stores over @runrelay/client (Svelte 4 and 5: `$run` in
 * components; in Svelte 5 `fromStore(runStore(...)).current` gives a rune-backed value).
 * A store connects when its first subscriber comes in the browser, and closes with the last.
 * Stores that follow the same run share one subscription (the client's, shared with every
 * binding on the page).
 */
import { get, readable, writable, type Readable } from 'svelte/store'
import {
  emptyRun, followRun, followRuns, triggerRun, type FollowOptions, type RunRecord, type RunsView, type RunSnapshot, type RunTypes, type RunTypesOf,
  type RunView, type VariablesOf, type WatchRunOptions, type WatchRunsOptions, type WorkflowRef, type TriggerInput,
} from '@runrelay/client'

export type { RunRecord, RunSnapshot, RunTypes, RunView, RunsView, TriggerInput }
export { defineWorkflow, sharedRunSubscriptions, type FromSchema, type WorkflowRef, type WorkflowTypes, type RunTypesOf, type VariablesOf } from '@runrelay/client'

/** Server rendering has no document: stores then hold their initial value and open nothing. */
const inBrowser = () => typeof document !== 'undefined'

/** A boolean, or a store of one: the store's changes switch the connection. */
export type Enabled = boolean | Readable<boolean>

/**
 * A store that follows `open` while it has subscribers in the browser and `enabled` holds
 * true, until `stop()`; otherwise its value keeps the last one with `state: 'closed'`.
 */
function switched<V extends { state: string }>(enabled: Enabled, initial: (on: boolean) => V, open: (set: (v: V) => void) => () => void): Readable<V> & { stop(): void } {
  const on = typeof enabled === 'boolean' ? readable(enabled) : enabled
  const closed = (v: V): V => (v.state === 'closed' ? v : { ...v, state: 'closed' })
  let stopped = false
  let undo: (() => void) | undefined
  const close = () => { undo?.(); undo = undefined }
  const store = writable<V>(initial(get(on)), (set) => {
    if (!inBrowser()) return
    const unsubscribe = on.subscribe((yes) => {
      if (yes && !stopped) undo ??= open(set)
      else { close(); store.update(closed) }
    })
    return () => { unsubscribe(); close() }
  })
  return { subscribe: store.subscribe, stop: () => { stopped = true; close(); store.update(closed) } }
}

export type RunStoreOptions<T extends RunTypes = RunTypes> = Omit<WatchRunOptions, 'onComplete'> & FollowOptions<T> & {
  /** false, or a store holding false: do not connect (yet); a store's changes connect and disconnect. Default true. */
  enabled?: Enabled
}

/** A run's store, and `stop()`. */
export interface RunStore<T extends RunTypes = RunTypes> extends Readable<RunView<T>> {
  /** Stop following the run (`state` becomes `closed`, for good); the shared subscription closes when nothing follows it. */
  stop(): void
}

/**
 * A store of one run, live: `$run.run.status`, `$run.run.progress`, `$run.state` (`connecting`
 * until the server's hello, then `open`, `reconnecting`, `closed`). Options: `enabled`,
 * `throttleMs`, `onComplete` (once per store). Type it with a `defineWorkflow` ref:
 * `runStore<typeof report>({ runId, … })`.
 */
export function runStore<T = RunTypes>(options: RunStoreOptions<RunTypesOf<T>>): RunStore<RunTypesOf<T>> {
  type R = RunTypesOf<T>
  const { enabled = true, onComplete, ...watch } = options
  let completed = false
  return switched<RunView<R>>(
    watch.runId ? enabled : false,
    (on) => ({ run: emptyRun<R>(watch.runId), state: on ? 'connecting' : 'closed', error: undefined }),
    (set) => followRun<R>({ ...watch, onComplete: (run) => { if (!completed) { completed = true; onComplete?.(run) } } }, set),
  )
}

export type RunsStoreOptions = WatchRunsOptions & {
  /** false, or a store holding false: do not connect (yet). Default true. */
  enabled?: Enabled
  /** At most one update per this many ms while events stream. Default 0: every event. */
  throttleMs?: number
}

/** A store of the runs matching a filter, newest first. `state` starts at `connecting`. */
export function runsStore(options: RunsStoreOptions): Readable<RunsView> {
  const { enabled = true, ...watch } = options
  const store = switched<RunsView>(enabled, (on) => ({ runs: [], state: on ? 'connecting' : 'closed', error: undefined }), (set) => followRuns(watch, set))
  return { subscribe: store.subscribe }
}

export interface TriggerState {
  /** The last run started. */
  run: RunRecord | undefined
  isLoading: boolean
  /** Why the last trigger failed: a RunRelayError (status, code, message) or a network error. */
  error: Error | undefined
}

export interface TriggerStore<W = RunTypes> extends Readable<TriggerState> {
  /** Start a run. Never throws (safe in `onclick`): resolves to the created run, or to `undefined` when it failed, with the reason in `$store.error`. */
  trigger: (input?: TriggerInput<VariablesOf<W>>) => Promise<RunRecord | undefined>
  /** Forget the last run and error. */
  reset: () => void
}

/** Trigger runs of a workflow (an id or a `defineWorkflow` ref): `trigger()` starts one; the store holds the last run, loading flag and error. */
export function triggerStore<W = RunTypes>(options: { url?: string; token?: string; workflowId: string | WorkflowRef<any> }): TriggerStore<W> {
  const idle: TriggerState = { run: undefined, isLoading: false, error: undefined }
  const state = writable<TriggerState>(idle)
  const workflowId = typeof options.workflowId === 'string' ? options.workflowId : options.workflowId.id
  const trigger = async (input: TriggerInput<VariablesOf<W>> = {}): Promise<RunRecord | undefined> => {
    state.update((s) => ({ ...s, isLoading: true, error: undefined }))
    try {
      const run = await triggerRun({ url: options.url, token: options.token, workflowId, ...input, variables: input.variables as Record<string, unknown> | undefined })
      state.set({ run, isLoading: false, error: undefined })
      return run
    } catch (error) {
      state.update((s) => ({ ...s, isLoading: false, error: error instanceof Error ? error : new Error(String(error)) }))
      return undefined
    }
  }
  return { subscribe: state.subscribe, trigger, reset: () => state.set(idle) }
}
