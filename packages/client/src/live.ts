import { isRunEvent, type RunEvent, type RunStatus } from './protocol.ts'
import { emptyRun, foldRun, type RunSnapshot, type RunTypes } from './snapshot.ts'
import { subscribeFeed, subscribeRun, type ConnectionState, type FeedSubscribeOptions, type RunSubscribeOptions, type Subscription } from './subscribe.ts'

/**
 * A value that changes over time, with Svelte's store contract: `subscribe` calls the
 * listener at once with the current value, then on every change, and returns an unsubscribe.
 * React reads it with `useSyncExternalStore`, Vue copies it into a `shallowRef`.
 */
export interface Live<V> {
  get(): V
  subscribe(listener: (value: V) => void): () => void
  /** Stop the underlying connection (listeners get no more values). */
  close(): void
}

/** What `watchRun` holds: the run snapshot, the connection state and the last error. */
export interface RunView<T extends RunTypes = RunTypes> {
  run: RunSnapshot<T>
  state: ConnectionState
  /** A refusal (SubscriptionError) or the last transient connection problem. */
  error: Error | undefined
}

/** A tiny observable value: the state the framework bindings share. */
export function liveValue<V>(initial: V, onClose: () => void = () => {}): Live<V> & { set(v: V): void } {
  let value = initial
  const listeners = new Set<(v: V) => void>()
  return {
    get: () => value,
    set(v: V) { value = v; for (const l of [...listeners]) l(v) },
    subscribe(l) { listeners.add(l); l(value); return () => { listeners.delete(l) } },
    close() { listeners.clear(); onClose() },
  }
}

export type WatchRunOptions = Omit<RunSubscribeOptions, 'onStateChange' | 'onEvent'> & {
  /** Keep the raw events in `run.events` (default true). */
  keepEvents?: boolean
  /** Called once with the final snapshot when the run ends. */
  onComplete?: (run: RunSnapshot<any>) => void
}

/** Subscribe to one run and keep its folded snapshot, connection state and error in a `Live` value. */
export function watchRun<T extends RunTypes = RunTypes>(opts: WatchRunOptions): Live<RunView<T>> {
  let sub: Subscription | undefined
  const live = liveValue<RunView<T>>({ run: emptyRun<T>(opts.runId), state: 'connecting', error: undefined }, () => sub?.close())
  const update = (patch: Partial<RunView<T>>) => live.set({ ...live.get(), ...patch })
  sub = subscribeRun({
    ...opts,
    onEvent: (e) => {
      const run = foldRun(live.get().run, e, opts.keepEvents !== false)
      update({ run })
      if (run.finished) opts.onComplete?.(run)
    },
    onStateChange: (state) => update({ state }),
    onError: (error) => { update({ error }); opts.onError?.(error) },
  })
  return live
}

export type WatchRunsOptions = Omit<FeedSubscribeOptions, 'onStateChange' | 'onEvent'> & {
  /** Load the current list with `GET /v1/runs` once the feed is open (needs an API key; tokens skip it). Default true. */
  initial?: boolean
  /** Keep at most this many runs, newest first (default 100). */
  limit?: number
}

/** What `watchRuns` holds: runs newest first, each folded from the feed's events. */
export interface RunsView {
  runs: RunSnapshot[]
  state: ConnectionState
  error: Error | undefined
}

interface ListedRun { id: string; workflow_id: string; status: RunStatus; tags: string[]; progress?: number | null; message?: string | null; result?: unknown; created_at: string; started_at?: string | null; finished_at?: string | null; duration_ms?: number | null; seq?: number }

/** A live list of runs matching a filter: the tenant feed (or a token's scope) folded into a map of runs. */
export function watchRuns(opts: WatchRunsOptions): Live<RunsView> {
  const limit = opts.limit ?? 100
  const byId = new Map<string, RunSnapshot>()
  const order: string[] = []
  let sub: Subscription | undefined
  const live = liveValue<RunsView>({ runs: [], state: 'connecting', error: undefined }, () => sub?.close())
  const publish = (patch: Partial<RunsView> = {}) => live.set({ ...live.get(), runs: order.slice(0, limit).map((id) => byId.get(id)!), ...patch })
  const put = (run: RunSnapshot, front: boolean) => {
    if (!byId.has(run.id)) front ? order.unshift(run.id) : order.push(run.id)
    byId.set(run.id, run)
  }
  const list = () => void loadInitial(opts, limit).then((items) => {
    for (const r of items) {
      if (byId.has(r.id)) continue
      put({
        ...emptyRun(r.id), workflowId: r.workflow_id, status: r.status, tags: r.tags, progress: r.progress ?? undefined, message: r.message ?? undefined,
        result: r.result ?? undefined, createdAt: r.created_at, startedAt: r.started_at ?? undefined, finishedAt: r.finished_at ?? undefined,
        durationMs: r.duration_ms ?? undefined, finished: !!r.finished_at, lastSeq: r.seq ?? 0,
      }, false)
    }
    publish()
  }, (error: Error) => publish({ error }))
  // The list loads once the feed is open (its position then set) or has failed: a run created
  // between a list loaded first and a feed opened after it, from its live end, was in neither.
  let listing = opts.initial === false || !opts.token?.startsWith('rr_')
  sub = subscribeFeed({
    ...opts,
    onEvent: (e: RunEvent) => {
      put(foldRun(byId.get(e.run_id) ?? emptyRun(e.run_id), e, false), true)
      publish()
    },
    onStateChange: (state) => { publish({ state }); if (state !== 'connecting' && !listing) { listing = true; list() } },
    onError: (error) => { publish({ error }); opts.onError?.(error) },
  })
  return live
}

async function loadInitial(opts: WatchRunsOptions, limit: number): Promise<ListedRun[]> {
  const q = new URLSearchParams({ limit: String(Math.min(limit, 200)) })
  const list = (v: string | string[] | undefined) => (v === undefined ? undefined : Array.isArray(v) ? v.join(',') : v)
  if (list(opts.workflowId)) q.set('workflow_id', list(opts.workflowId)!)
  if (list(opts.status)) q.set('status', list(opts.status)!)
  if (list(opts.tag)) q.set('tag', list(opts.tag)!)
  const res = await request<{ items: ListedRun[] }>(opts, 'GET', `/v1/runs?${q}`)
  return res.items
}

/** Options every HTTP call of the SDK takes. */
export interface HttpOptions { url?: string; token?: string; fetch?: typeof fetch; signal?: AbortSignal }

/** An API error answer, with its status and the server's `{error:{code,message,details}}`. */
export class RunRelayError extends Error {
  readonly status: number
  readonly code: string
  readonly details: unknown[]
  constructor(status: number, code: string, message: string, details: unknown[] = []) {
    super(message)
    this.name = 'RunRelayError'
    this.status = status
    this.code = code
    this.details = details
  }
}

/** One JSON call to the API with the SDK's credential. */
export async function request<R>(opts: HttpOptions, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<R> {
  const base = (opts.url ?? (globalThis as { location?: { origin?: string } }).location?.origin ?? '').replace(/\/+$/, '').replace(/^ws/, 'http')
  if (!base) throw new TypeError('runrelay: pass `url` (the server base URL)')
  const f = opts.fetch ?? globalThis.fetch
  const res = await f(base + path, {
    method, signal: opts.signal,
    headers: { ...(opts.token && { authorization: `Bearer ${opts.token}` }), ...(body !== undefined && { 'content-type': 'application/json' }), ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  const text = await res.text()
  let json: any
  try { json = text ? JSON.parse(text) : undefined } catch { json = undefined }
  if (!res.ok) throw new RunRelayError(res.status, json?.error?.code ?? 'http_error', json?.error?.message ?? `HTTP ${res.status}`, json?.error?.details ?? [])
  return json as R
}

/** A run as the API returns it (`POST …/runs`, `GET /v1/runs/{id}`). */
export interface RunRecord { id: string; workflow_id: string; status: RunStatus; tags: string[]; created_at: string; [field: string]: unknown }

/** What a trigger sends: the workflow's variables (typed from its ref in the framework hooks), tags, an idempotency key. */
export interface TriggerInput<V = Record<string, unknown>> {
  variables?: V
  tags?: string[]
  /** Sent as `Idempotency-Key`: the same key and body never start a second run. */
  idempotencyKey?: string
}

export interface TriggerOptions extends HttpOptions, TriggerInput {
  /** The workflow to run (a trigger token allows exactly one). */
  workflowId: string
}

/** Trigger a run with an API key (runs:write) or a trigger token; resolves to the created run. */
export function triggerRun(opts: TriggerOptions): Promise<RunRecord> {
  const body = { ...(opts.variables && { variables: opts.variables }), ...(opts.tags && { tags: opts.tags }) }
  return request<RunRecord>(opts, 'POST', `/v1/workflows/${encodeURIComponent(opts.workflowId)}/runs`, body, opts.idempotencyKey ? { 'idempotency-key': opts.idempotencyKey } : {})
}

export { isRunEvent }
