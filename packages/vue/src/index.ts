/**
 * @runrelay/vue: composables over @runrelay/client. Arguments may be refs or getters; the
 * connection follows them, opens once the component is mounted (never during server
 * rendering) and closes with the component's scope.
 */
import { getCurrentInstance, onMounted, onScopeDispose, shallowRef, toValue, watch, type MaybeRefOrGetter, type ShallowRef } from 'vue'
import {
  emptyRun, triggerRun, watchRun, watchRuns, type Live, type RunRecord, type RunsView, type RunSnapshot, type RunTypes, type RunView,
  type WatchRunsOptions, type WebSocketConstructor,
} from '@runrelay/client'

export type { RunRecord, RunSnapshot, RunTypes, RunView, RunsView }

export interface RunRelayConfig {
  url?: string
  token?: MaybeRefOrGetter<string | undefined>
  refreshToken?: () => Promise<string>
  WebSocket?: WebSocketConstructor
}

/** Follow a `Live` value built from reactive inputs into a shallowRef; restarted when the inputs change. */
function follow<V, K>(initial: V, inputs: () => K | undefined, open: (key: K) => Live<V>): ShallowRef<V> {
  const value = shallowRef(initial) as ShallowRef<V>
  let live: Live<V> | undefined
  let stopSub: (() => void) | undefined
  const close = () => { stopSub?.(); live?.close(); live = undefined; stopSub = undefined }
  const start = () => watch(inputs, (key) => {
    close()
    if (key === undefined) return
    live = open(key)
    stopSub = live.subscribe((v) => { value.value = v })
  }, { immediate: true })
  let stopWatch: (() => void) | undefined
  if (getCurrentInstance()) onMounted(() => { stopWatch = start() })
  else stopWatch = start()
  onScopeDispose(() => { stopWatch?.(); close() })
  return value
}

/** A run, live: `view.value.run` is its snapshot, `view.value.state` the connection state. */
export function useRun<T extends RunTypes = RunTypes>(runId: MaybeRefOrGetter<string | undefined | null>, config: RunRelayConfig & { onComplete?: (run: RunSnapshot) => void } = {}): ShallowRef<RunView<T>> {
  return follow<RunView<T>, { runId: string; token: string | undefined }>(
    { run: emptyRun<T>(toValue(runId) ?? ''), state: 'closed', error: undefined },
    () => { const id = toValue(runId); return id ? { runId: id, token: toValue(config.token) } : undefined },
    ({ runId: id, token }) => watchRun<T>({ url: config.url, token, runId: id, refreshToken: config.refreshToken, WebSocket: config.WebSocket, onComplete: config.onComplete }),
  )
}

export type RunsFilter = Pick<WatchRunsOptions, 'workflowId' | 'status' | 'tag' | 'limit' | 'after' | 'initial'>

/** A live list of runs matching a filter, newest first. */
export function useRuns(filter: MaybeRefOrGetter<RunsFilter> = {}, config: RunRelayConfig = {}): ShallowRef<RunsView> {
  return follow<RunsView, string>(
    { runs: [], state: 'closed', error: undefined },
    () => JSON.stringify([toValue(filter), toValue(config.token)]),
    () => watchRuns({ ...toValue(filter), url: config.url, token: toValue(config.token), refreshToken: config.refreshToken, WebSocket: config.WebSocket }),
  )
}

export interface TriggerInput { variables?: Record<string, unknown>; tags?: string[]; idempotencyKey?: string }
export interface UseTrigger {
  run: ShallowRef<RunRecord | undefined>
  isLoading: ShallowRef<boolean>
  error: ShallowRef<Error | undefined>
  trigger: (input?: TriggerInput) => Promise<RunRecord>
}

/** Trigger runs of a workflow (with a trigger token, or a key on a trusted page). */
export function useTrigger(workflowId: MaybeRefOrGetter<string>, config: RunRelayConfig = {}): UseTrigger {
  const run = shallowRef<RunRecord | undefined>()
  const isLoading = shallowRef(false)
  const error = shallowRef<Error | undefined>()
  const trigger = async (input: TriggerInput = {}): Promise<RunRecord> => {
    isLoading.value = true
    error.value = undefined
    try {
      run.value = await triggerRun({ url: config.url, token: toValue(config.token), workflowId: toValue(workflowId), ...input })
      return run.value
    } catch (err) {
      error.value = err as Error
      throw err
    } finally {
      isLoading.value = false
    }
  }
  return { run, isLoading, error, trigger }
}
