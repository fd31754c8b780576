/**
 * @runrelay/svelte: Svelte stores over @runrelay/client (Svelte 4 and 5: `$run` in
 * components; in Svelte 5 `fromStore(runStore(...)).current` gives a rune-backed value).
 * A store connects when its first subscriber comes in the browser, and closes with the last.
 */
import { readable, writable, type Readable } from 'svelte/store'
import {
  emptyRun, triggerRun, watchRun, watchRuns, type Live, type RunRecord, type RunsView, type RunSnapshot, type RunTypes, type RunView,
  type WatchRunOptions, type WatchRunsOptions,
} from '@runrelay/client'

export type { RunRecord, RunSnapshot, RunTypes, RunView, RunsView }

/** Server rendering has no document: stores then hold their initial value and open nothing. */
const inBrowser = () => typeof document !== 'undefined'

function fromLive<V>(initial: V, open: () => Live<V>): Readable<V> {
  return readable(initial, (set) => {
    if (!inBrowser()) return
    const live = open()
    const stop = live.subscribe(set)
    return () => { stop(); live.close() }
  })
}

/** A store of one run, live: `$run.run.status`, `$run.run.progress`, `$run.state`… */
export function runStore<T extends RunTypes = RunTypes>(options: WatchRunOptions): Readable<RunView<T>> {
  return fromLive<RunView<T>>({ run: emptyRun<T>(options.runId), state: 'closed', error: undefined }, () => watchRun<T>(options))
}

/** A store of the runs matching a filter, newest first. */
export function runsStore(options: WatchRunsOptions): Readable<RunsView> {
  return fromLive<RunsView>({ runs: [], state: 'closed', error: undefined }, () => watchRuns(options))
}

export interface TriggerInput { variables?: Record<string, unknown>; tags?: string[]; idempotencyKey?: string }
export interface TriggerState { run: RunRecord | undefined; isLoading: boolean; error: Error | undefined }

/** Trigger runs of a workflow: `trigger()` starts one; the store holds the last run, loading flag and error. */
export function triggerStore(options: { url?: string; token?: string; workflowId: string }): Readable<TriggerState> & { trigger: (input?: TriggerInput) => Promise<RunRecord> } {
  const state = writable<TriggerState>({ run: undefined, isLoading: false, error: undefined })
  const trigger = async (input: TriggerInput = {}): Promise<RunRecord> => {
    state.update((s) => ({ ...s, isLoading: true, error: undefined }))
    try {
      const run = await triggerRun({ ...options, ...input })
      state.set({ run, isLoading: false, error: undefined })
      return run
    } catch (error) {
      state.update((s) => ({ ...s, isLoading: false, error: error as Error }))
      throw error
    }
  }
  return { subscribe: state.subscribe, trigger }
}
