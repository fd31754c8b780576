/**
 * @runrelay/react: hooks over @runrelay/client. `useRun` (one run, live, folded into a
 * snapshot), `useRuns` (a live list), `useTrigger` (start a run with a key or a trigger token).
 * Nothing connects during server rendering: connections open in effects, in the browser.
 */
import { createContext, createElement, useCallback, useContext, useEffect, useRef, useState, type ReactElement, type ReactNode } from 'react'
import {
  emptyRun, triggerRun, watchRun, watchRuns, type RunRecord, type RunsView, type RunSnapshot, type RunTypes, type RunView,
  type WatchRunsOptions, type WebSocketConstructor,
} from '@runrelay/client'

export type { RunRecord, RunSnapshot, RunTypes, RunView, RunsView }

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

export interface UseRunOptions extends RunRelayConfig {
  /** false: do not connect (yet). */
  enabled?: boolean
  /** Called once with the final snapshot. */
  onComplete?: (run: RunSnapshot) => void
}

/** A run, live: its snapshot (status, progress, outputs, result, error, timings, events), the connection state and the last error. */
export function useRun<T extends RunTypes = RunTypes>(runId: string | undefined | null, options: UseRunOptions = {}): RunView<T> {
  const config = useConfig(options)
  const onComplete = useRef(options.onComplete)
  onComplete.current = options.onComplete
  const [view, setView] = useState<RunView<T>>(() => ({ run: emptyRun<T>(runId ?? ''), state: 'closed', error: undefined }))
  const enabled = !!runId && options.enabled !== false
  useEffect(() => {
    if (!enabled) return
    const live = watchRun<T>({ url: config.url, token: config.token, runId: runId!, refreshToken: config.refreshToken, WebSocket: config.WebSocket, onComplete: (r) => onComplete.current?.(r) })
    const stop = live.subscribe(setView)
    return () => { stop(); live.close() }
  }, [enabled, runId, config.url, config.token])
  return view
}

export type RunsFilter = Pick<WatchRunsOptions, 'workflowId' | 'status' | 'tag' | 'limit' | 'after' | 'initial'>

/** A live list of runs matching a filter (newest first), each folded from the feed. */
export function useRuns(filter: RunsFilter = {}, options: RunRelayConfig & { enabled?: boolean } = {}): RunsView {
  const config = useConfig(options)
  const [view, setView] = useState<RunsView>({ runs: [], state: 'closed', error: undefined })
  const key = JSON.stringify(filter)
  const enabled = options.enabled !== false
  useEffect(() => {
    if (!enabled) return
    const live = watchRuns({ ...filter, url: config.url, token: config.token, refreshToken: config.refreshToken, WebSocket: config.WebSocket })
    const stop = live.subscribe(setView)
    return () => { stop(); live.close() }
  }, [enabled, key, config.url, config.token])
  return view
}

export interface TriggerState {
  /** Start a run; resolves to it (and keeps it in `run`). */
  trigger: (input?: { variables?: Record<string, unknown>; tags?: string[]; idempotencyKey?: string }) => Promise<RunRecord>
  run: RunRecord | undefined
  isLoading: boolean
  error: Error | undefined
}

/** Trigger runs of a workflow from the browser, with a trigger token (or a key on a trusted page). */
export function useTrigger(workflowId: string, options: RunRelayConfig = {}): TriggerState {
  const config = useConfig(options)
  const [state, setState] = useState<Omit<TriggerState, 'trigger'>>({ run: undefined, isLoading: false, error: undefined })
  const trigger = useCallback(async (input: Parameters<TriggerState['trigger']>[0] = {}) => {
    setState((s) => ({ ...s, isLoading: true, error: undefined }))
    try {
      const run = await triggerRun({ url: config.url, token: config.token, workflowId, ...input })
      setState({ run, isLoading: false, error: undefined })
      return run
    } catch (error) {
      setState((s) => ({ ...s, isLoading: false, error: error as Error }))
      throw error
    }
  }, [workflowId, config.url, config.token])
  return { ...state, trigger }
}
