/**
 * @runrelay/vue: composables over @runrelay/client. Arguments may be refs or getters; the
 * connection follows them, opens once the component is mounted (never during server
 * rendering) and closes with the component's scope. Components that follow the same run share
 * one subscription (the client's, shared with every binding on the page).
 */
import { getCurrentInstance, onMounted, onScopeDispose, shallowRef, toValue, watch, type MaybeRefOrGetter, type ShallowRef } from 'vue'
import {
  emptyRun, followRun, followRuns, triggerRun, type RunRecord, type RunsView, type RunSnapshot, type RunTypes, type RunTypesOf, type RunView,
  type VariablesOf, type WatchRunsOptions, type WebSocketConstructor, type WorkflowRef, type TriggerInput,
} from '@runrelay/client'

export type { RunRecord, RunSnapshot, RunTypes, RunView, RunsView, TriggerInput }
export { defineWorkflow, sharedRunSubscriptions, type FromSchema, type WorkflowRef, type WorkflowTypes, type RunTypesOf, type VariablesOf } from '@runrelay/client'

export interface RunRelayConfig {
  url?: string
  token?: MaybeRefOrGetter<string | undefined>
  refreshToken?: () => Promise<string>
  WebSocket?: WebSocketConstructor
}

/**
 * Call `open` with the inputs once the component is mounted (at once outside a component),
 * again when they change (compared as JSON, read inside the watcher so nested refs are
 * tracked), and call what it returned before each reopen and when the scope ends.
 */
function follow<A>(inputs: () => A, open: (args: A) => (() => void) | void): void {
  let undo: (() => void) | void
  let last: string | undefined
  const close = () => { undo?.(); undo = undefined }
  const start = () => watch(() => { const args = inputs(); return { args, key: JSON.stringify(args) } }, ({ args, key }) => {
    if (key === last) return
    last = key
    close()
    undo = open(args)
  }, { immediate: true })
  let stopWatch: (() => void) | undefined
  if (getCurrentInstance()) onMounted(() => { stopWatch = start() })
  else stopWatch = start()
  onScopeDispose(() => { stopWatch?.(); close() })
}

/** The same view with `state: 'closed'` (the same object when it already is). */
const closed = <V extends { state: string }>(v: V): V => (v.state === 'closed' ? v : { ...v, state: 'closed' })

export interface UseRunOptions<T extends RunTypes = RunTypes> extends RunRelayConfig {
  /** false: do not connect (yet). A ref or getter: the connection follows it. Default true. */
  enabled?: MaybeRefOrGetter<boolean | undefined>
  /** At most one update per this many ms while events stream (the final state and connection changes pass at once). Default 0: every event. */
  throttleMs?: MaybeRefOrGetter<number | undefined>
  /** Called once with the final snapshot when the run ends (also when it had ended before this component mounted). */
  onComplete?: (run: RunSnapshot<T>) => void
}

/** What `useRun` returns: the live view in a shallow ref, with `stop()` on it. */
export type UseRunResult<T extends RunTypes = RunTypes> = ShallowRef<RunView<T>> & {
  /** Stop following the run here (`state` becomes `closed`); the shared subscription closes when nothing follows it. A new run id follows again. */
  stop: () => void
}

/**
 * A run, live: `view.value.run` is its snapshot, `view.value.state` the connection state
 * (`connecting` until the server's hello, then `open`, `reconnecting`, `closed`), and
 * `view.stop()` stops following it. Type it with a `defineWorkflow` ref: `useRun<typeof report>(id)`.
 */
export function useRun<T = RunTypes>(runId: MaybeRefOrGetter<string | undefined | null>, options: UseRunOptions<RunTypesOf<T>> = {}): UseRunResult<RunTypesOf<T>> {
  type R = RunTypesOf<T>
  const stopped = shallowRef<string | null>(null)
  const inputs = () => {
    const id = toValue(runId) ?? ''
    const on = !!id && toValue(options.enabled) !== false && stopped.value !== id
    return { id, on, token: toValue(options.token), throttleMs: toValue(options.throttleMs) }
  }
  const initial = inputs()
  const view = shallowRef<RunView<R>>({ run: emptyRun<R>(initial.id), state: initial.on ? 'connecting' : 'closed', error: undefined })
  // Once per component and run, however often the connection is reopened (a new token, a new throttle).
  let completedFor: string | undefined
  follow(inputs, ({ id, on, token, throttleMs }) => {
    if (!on) {
      const v = view.value
      view.value = v.run.id === id ? closed(v) : { run: emptyRun<R>(id), state: 'closed', error: v.error }
      return
    }
    return followRun<R>({
      url: options.url, token, runId: id, refreshToken: options.refreshToken, WebSocket: options.WebSocket, throttleMs,
      onComplete: (run) => { if (completedFor !== id) { completedFor = id; options.onComplete?.(run) } },
    }, (v) => { view.value = v })
  })
  const stop = () => { const id = toValue(runId); if (id) stopped.value = id }
  return Object.assign(view, { stop })
}

export type RunsFilter = Pick<WatchRunsOptions, 'workflowId' | 'status' | 'tag' | 'limit' | 'after' | 'initial'>

export interface UseRunsOptions extends RunRelayConfig {
  /** false: do not connect (yet). A ref or getter. Default true. */
  enabled?: MaybeRefOrGetter<boolean | undefined>
  /** At most one update per this many ms while events stream. Default 0: every event. */
  throttleMs?: MaybeRefOrGetter<number | undefined>
}

/** A live list of runs matching a filter, newest first. `state` starts at `connecting`. */
export function useRuns(filter: MaybeRefOrGetter<RunsFilter> = {}, options: UseRunsOptions = {}): ShallowRef<RunsView> {
  const inputs = () => ({ on: toValue(options.enabled) !== false, filter: toValue(filter), token: toValue(options.token), throttleMs: toValue(options.throttleMs) })
  const view = shallowRef<RunsView>({ runs: [], state: inputs().on ? 'connecting' : 'closed', error: undefined })
  follow(inputs, ({ on, filter: f, token, throttleMs }) => {
    if (!on) { view.value = closed(view.value); return }
    return followRuns({ ...f, url: options.url, token, refreshToken: options.refreshToken, WebSocket: options.WebSocket, throttleMs }, (v) => { view.value = v })
  })
  return view
}


export interface UseTrigger<W = RunTypes> {
  /** The last run started. */
  run: ShallowRef<RunRecord | undefined>
  isLoading: ShallowRef<boolean>
  /** Why the last trigger failed: a RunRelayError (status, code, message) or a network error. */
  error: ShallowRef<Error | undefined>
  /** Start a run. Never throws (safe in `@click`): resolves to the created run, or to `undefined` when it failed, with the reason in `error`. */
  trigger: (input?: TriggerInput<VariablesOf<W>>) => Promise<RunRecord | undefined>
  /** Forget the last run and error. */
  reset: () => void
}

/** Trigger runs of a workflow (with a trigger token, or a key on a trusted page). Pass a `defineWorkflow` ref to type the variables. */
export function useTrigger<W = RunTypes>(workflow: MaybeRefOrGetter<string | WorkflowRef<any>>, config: RunRelayConfig = {}): UseTrigger<W> {
  const run = shallowRef<RunRecord | undefined>()
  const isLoading = shallowRef(false)
  const error = shallowRef<Error | undefined>()
  const trigger = async (input: TriggerInput<VariablesOf<W>> = {}): Promise<RunRecord | undefined> => {
    isLoading.value = true
    error.value = undefined
    try {
      const w = toValue(workflow)
      run.value = await triggerRun({ url: config.url, token: toValue(config.token), workflowId: typeof w === 'string' ? w : w.id, ...input, variables: input.variables as Record<string, unknown> | undefined })
      return run.value
    } catch (err) {
      error.value = err instanceof Error ? err : new Error(String(err))
      return undefined
    } finally {
      isLoading.value = false
    }
  }
  const reset = () => { run.value = undefined; error.value = undefined; isLoading.value = false }
  return { run, isLoading, error, trigger, reset }
}
