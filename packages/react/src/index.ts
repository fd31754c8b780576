/**
 * @runrelay/react: hooks over @runrelay/client. `useRun` (one run, live, folded into a
 * snapshot; one shared subscription per run however many components read it), `useRuns` (a
 * live list), `useTrigger` (start a run with a key or a trigger token; never throws).
 * Nothing connects during server rendering: connections open in effects, in the browser.
 */
import { createContext, createElement, useCallback, useContext, useEffect, useRef, useState, type ReactElement, type ReactNode } from 'react'
import {
  emptyRun, followRun, followRuns, triggerRun, type RunRecord, type RunsView, type RunSnapshot, type RunTypes, type RunTypesOf, type RunView,
  type VariablesOf, type WatchRunsOptions, type WebSocketConstructor, type WorkflowRef, type TriggerInput,
} from '@runrelay/client'

export type { RunRecord, RunSnapshot, RunTypes, RunView, RunsView, TriggerInput }
export { defineWorkflow, type FromSchema, type WorkflowRef, type WorkflowTypes, type RunTypesOf, type VariablesOf } from '@runrelay/client'

/** Where and how to connect; given once by `RunRelayProvider`, or per hook. */
export interface RunRelayConfig {
  /** The runrelay server (default: the page's origin). */
  url?: string
  /** An API key, a subscriber token or a trigger token. */
  token?: string
  /** Called for a fresh token before the current one expires. */
  refreshToken?: () => Promise<string>
  WebSocket?: WebSocketConstructor
}

const RunRelayContext = createContext<RunRelayConfig>({})

/** Gives every hook below it the server URL and credential. */
export function RunRelayProvider(props: RunRelayConfig & { children?: ReactNode }): ReactElement {
  const { children, ...config } = props
  return createElement(RunRelayContext.Provider, { value: config }, children)
}

/** The config from the provider, overridden by the hook's own options; the refresh callback kept in a ref so a new closure does not reconnect. */
function useConfig(options: RunRelayConfig): RunRelayConfig {
  const config = { ...useContext(RunRelayContext), ...options }
  const refresh = useRef(config.refreshToken)
  refresh.current = config.refreshToken
  const refreshToken = config.refreshToken ? () => refresh.current!() : undefined
  return { ...config, refreshToken }
}

/** How many runs have an open shared subscription (for tests and devtools); the subscriptions are @runrelay/client's, shared with every binding on the page. */
export { sharedRunSubscriptions } from '@runrelay/client'

export interface UseRunOptions<T extends RunTypes = RunTypes> extends RunRelayConfig {
  /** false: do not connect (yet). Default true. */
  enabled?: boolean
  /** At most one re-render per this many ms while events stream (the final state is shown at once). Default 0: every event. */
  throttleMs?: number
  /** Called once with the final snapshot when the run ends (also when it had ended before this component mounted). */
  onComplete?: (run: RunSnapshot<T>) => void
}

/** What `useRun` returns: the run view, and `stop()` to stop following it from this component. */
export interface UseRunResult<T extends RunTypes = RunTypes> extends RunView<T> {
  /** Stop following the run here (state becomes `closed`); the shared subscription closes when no component follows it. */
  stop: () => void
}

/**
 * A run, live: its snapshot (status, progress, outputs, result, error, timings, events), the
 * connection state (`connecting` until the first hello, then `open`, `reconnecting`, `closed`)
 * and the last error. Components that follow the same run (same url and token) share one
 * subscription. Type it with the run's types or a workflow ref: `useRun<typeof report>(id)`.
 */
export function useRun<T = RunTypes>(runId: string | undefined | null, options: UseRunOptions<RunTypesOf<T>> = {}): UseRunResult<RunTypesOf<T>> {
  type R = RunTypesOf<T>
  const config = useConfig(options)
  const onComplete = useRef(options.onComplete)
  onComplete.current = options.onComplete
  const [stopped, setStopped] = useState<string | null>(null)
  const enabled = !!runId && options.enabled !== false && stopped !== runId
  const [view, setView] = useState<RunView<R>>(() => ({ run: emptyRun<R>(runId ?? ''), state: enabled ? 'connecting' : 'closed', error: undefined }))
  useEffect(() => {
    if (!enabled) {
      setView((v) => (v.state === 'closed' && v.run.id === (runId ?? '') ? v : { run: v.run.id === runId ? v.run : emptyRun<R>(runId ?? ''), state: 'closed', error: v.error }))
      return
    }
    // The shared subscription, the throttle and the once-per-component onComplete are @runrelay/client's followRun.
    return followRun<R>({
      url: config.url, token: config.token, runId: runId!, refreshToken: config.refreshToken, WebSocket: config.WebSocket,
      throttleMs: options.throttleMs, onComplete: (run) => onComplete.current?.(run),
    }, setView)
  }, [enabled, runId, config.url, config.token, options.throttleMs])
  const stop = useCallback(() => { if (runId) setStopped(runId) }, [runId])
  return { ...view, stop }
}

export type RunsFilter = Pick<WatchRunsOptions, 'workflowId' | 'status' | 'tag' | 'limit' | 'after' | 'initial'>

/** A live list of runs matching a filter (newest first), each folded from the feed. `state` starts at `connecting`. */
export function useRuns(filter: RunsFilter = {}, options: RunRelayConfig & { enabled?: boolean; throttleMs?: number } = {}): RunsView {
  const config = useConfig(options)
  const enabled = options.enabled !== false
  const [view, setView] = useState<RunsView>({ runs: [], state: enabled ? 'connecting' : 'closed', error: undefined })
  const key = JSON.stringify(filter)
  useEffect(() => {
    if (!enabled) { setView((v) => ({ ...v, state: 'closed' })); return }
    return followRuns({ ...filter, url: config.url, token: config.token, refreshToken: config.refreshToken, WebSocket: config.WebSocket, throttleMs: options.throttleMs }, setView)
  }, [enabled, key, config.url, config.token, options.throttleMs])
  return view
}


export interface TriggerState<W = RunTypes> {
  /**
   * Start a run. Never throws (safe in `onClick`): resolves to the created run, or to
   * `undefined` when it failed, with the reason in `error`.
   */
  trigger: (input?: TriggerInput<VariablesOf<W>>) => Promise<RunRecord | undefined>
  /** The last run started (its id goes to `useRun<typeof workflow>(run?.id)`). */
  run: RunRecord | undefined
  isLoading: boolean
  /** Why the last trigger failed: a RunRelayError (status, code, message) or a network error. */
  error: Error | undefined
  /** Forget the last run and error. */
  reset: () => void
}

/** Trigger runs of a workflow from the browser, with a trigger token (or a key on a trusted page). Pass a `defineWorkflow` ref to type the variables. */
export function useTrigger<W = RunTypes>(workflow: string | WorkflowRef<any>, options: RunRelayConfig = {}): TriggerState<W> {
  const config = useConfig(options)
  const workflowId = typeof workflow === 'string' ? workflow : workflow.id
  const [state, setState] = useState<Pick<TriggerState, 'run' | 'isLoading' | 'error'>>({ run: undefined, isLoading: false, error: undefined })
  const mounted = useRef(true)
  useEffect(() => { mounted.current = true; return () => { mounted.current = false } }, [])
  const trigger = useCallback(async (input: TriggerInput<VariablesOf<W>> = {}) => {
    setState((s) => ({ ...s, isLoading: true, error: undefined }))
    try {
      const run = await triggerRun({ url: config.url, token: config.token, workflowId, ...input, variables: input.variables as Record<string, unknown> | undefined })
      if (mounted.current) setState({ run, isLoading: false, error: undefined })
      return run
    } catch (error) {
      if (mounted.current) setState((s) => ({ ...s, isLoading: false, error: error instanceof Error ? error : new Error(String(error)) }))
      return undefined
    }
  }, [workflowId, config.url, config.token])
  const reset = useCallback(() => setState({ run: undefined, isLoading: false, error: undefined }), [])
  return { ...state, trigger, reset }
}
