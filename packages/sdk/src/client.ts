/**
 * The API client of @runrelay/sdk (the webhook helpers are in webhooks.ts, so a program that only
 * calls the API, like the runrelay CLI, does not load the HMAC code).
 *
 * @runrelay/sdk: runrelay from a backend. Every route is a typed call (`rr.api.GET('/v1/runs')`)
 * generated from the server's OpenAPI document (openapi-typescript types, openapi-fetch at run
 * time), plus the helpers a backend needs in one line: mint a subscriber or trigger token for a
 * browser, trigger a run and wait for its end, verify an incoming webhook. Uses only `fetch` and
 * plain JavaScript (the Standard Webhooks HMAC included), so it runs on Node 20+, Deno, Bun and Workers.
 */
import createClient, { type Client, type ClientOptions } from 'openapi-fetch'
import type { components, operations, paths } from './openapi.generated.ts'

export type { components, operations, paths }
export type Schemas = components['schemas']
export type Run = Schemas['Run']
export type RunStatus = Schemas['RunStatus']
export type RunEvent = Schemas['RunEvent']
export type Workflow = Schemas['Workflow']
export type TokenCreated = Schemas['TokenCreated']
/** The typed client: `GET`, `POST`, `PATCH`, `DELETE`, … over every documented path. */
export type RunRelayApi = Client<paths, `${string}/${string}`>

/** The statuses a run ends in; nothing follows them. */
export const TERMINAL_STATUSES: readonly RunStatus[] = ['completed', 'failed', 'canceled', 'timed_out']

/** Whether a run in this status has ended. */
export const isTerminal = (status: RunStatus): boolean => TERMINAL_STATUSES.includes(status)

/** What the server answered when a helper's call failed: its status and runrelay's error body. */
export class RunRelayError extends Error {
  readonly status: number
  readonly code: string
  readonly details: unknown
  constructor(status: number, code: string, message: string, details?: unknown) {
    super(message)
    this.name = 'RunRelayError'
    this.status = status
    this.code = code
    this.details = details
  }
}

export interface RunRelayOptions {
  /** The server, e.g. `https://relay.example.com`. */
  url: string
  /** An API key (`rr_…`); keep it on the server. */
  key: string
  /** A fetch to use instead of the global one (tests, proxies, a Worker's service binding). */
  fetch?: ClientOptions['fetch']
  /** Extra headers on every request. */
  headers?: Record<string, string>
}

export interface TriggerOptions {
  variables?: Record<string, unknown>
  tags?: string[]
  /** Sent as `Idempotency-Key`: the same key and body answer the first run again, never a second one. */
  idempotencyKey?: string
}

export interface WaitOptions {
  /** Give up after this long (default 10 minutes); the run goes on, the helper throws `wait_timeout`. */
  timeoutMs?: number
  /** First delay between two reads (default 500 ms), doubled up to `maxIntervalMs` (default 5 s). */
  intervalMs?: number
  maxIntervalMs?: number
  /** Stop waiting when this signal aborts. */
  signal?: AbortSignal
  /** Called with each read of the run while it has not ended. */
  onPoll?: (run: Run) => void
}

export interface SubscriberTokenOptions {
  runIds?: string[]
  workflowIds?: string[]
  tags?: string[]
  /** Lifetime in seconds (server default 900, at most 86400). */
  ttlSeconds?: number
}

export interface TriggerTokenOptions {
  workflowId: string
  /** How many runs the token may start (default 1). */
  maxRuns?: number
  /** Lifetime in seconds (server default 900, at most 3600). */
  ttlSeconds?: number
}

type Answer<T> = { data?: T; error?: unknown; response: Response }

/** The data of a 2xx answer, or a RunRelayError built from runrelay's error body. */
function unwrap<T>(r: Answer<T>): T {
  if (r.response.ok && r.data !== undefined) return r.data
  const e = (r.error as { error?: { code?: string; message?: string; details?: unknown } } | undefined)?.error
  throw new RunRelayError(r.response.status, e?.code ?? 'http_error', e?.message ?? `HTTP ${r.response.status}`, e?.details)
}

const sleep = (ms: number, signal?: AbortSignal) => new Promise<void>((resolve, reject) => {
  if (signal?.aborted) return reject(signal.reason)
  const timer = setTimeout(() => { signal?.removeEventListener('abort', abort); resolve() }, ms)
  const abort = () => { clearTimeout(timer); reject(signal!.reason) }
  signal?.addEventListener('abort', abort, { once: true })
})

/** A runrelay client for a backend (see createRunRelay). */
export interface RunRelay {
  /** Typed calls for every route: `api.GET('/v1/runs', { params: { query: { status: 'failed' } } })` → `{ data, error, response }`. */
  api: RunRelayApi
  runs: {
    /** Read a run. */
    get(runId: string): Promise<Run>
    /** Trigger a run of a workflow (202 with the run, status `queued`). */
    trigger(workflowId: string, o?: TriggerOptions): Promise<Run>
    /** Read the run until it ends (backing off between reads); resolves with the finished run. */
    waitFor(runId: string, o?: WaitOptions): Promise<Run>
    /** Trigger a run and resolve when it has ended (any terminal status: check `run.status`). */
    triggerAndWait(workflowId: string, o?: TriggerOptions & WaitOptions): Promise<Run>
    /** Cancel a run (409 → RunRelayError `conflict` when its state or the provider does not allow it). */
    cancel(runId: string, reason?: string): Promise<Run>
  }
  tokens: {
    /** A read-only token for a browser: the runs, workflows or tags it may watch. */
    subscriber(o: SubscriberTokenOptions): Promise<TokenCreated>
    /** A token that may start up to `maxRuns` runs of one workflow (and read those runs), e.g. for `useTrigger`. */
    trigger(o: TriggerTokenOptions): Promise<TokenCreated>
  }
}

/**
 * A runrelay client for a backend: `api` for every route, and helpers for the common jobs.
 * The helpers resolve to the data or throw a RunRelayError; `api` returns `{ data, error }`.
 */
export function createRunRelay(opts: RunRelayOptions): RunRelay {
  if (!opts.url) throw new TypeError('createRunRelay: url is required')
  if (!opts.key) throw new TypeError('createRunRelay: key is required')
  const api: RunRelayApi = createClient<paths>({
    baseUrl: opts.url.replace(/\/+$/, ''),
    headers: { ...opts.headers, authorization: `Bearer ${opts.key}` },
    ...(opts.fetch && { fetch: opts.fetch }),
  })

  const getRun = async (runId: string): Promise<Run> => unwrap(await api.GET('/v1/runs/{id}', { params: { path: { id: runId } } }))

  const trigger = async (workflowId: string, o: TriggerOptions = {}): Promise<Run> => unwrap(await api.POST('/v1/workflows/{id}/runs', {
    params: { path: { id: workflowId }, header: o.idempotencyKey ? { 'Idempotency-Key': o.idempotencyKey } : {} },
    body: { variables: o.variables ?? {}, ...(o.tags && { tags: o.tags }) },
  }))

  const waitForRun = async (runId: string, o: WaitOptions = {}): Promise<Run> => {
    const deadline = Date.now() + (o.timeoutMs ?? 600_000)
    let interval = o.intervalMs ?? 500
    for (;;) {
      const run = await getRun(runId)
      if (isTerminal(run.status)) return run
      o.onPoll?.(run)
      const left = deadline - Date.now()
      if (left <= 0) throw new RunRelayError(0, 'wait_timeout', `run ${runId} is still ${run.status} after ${o.timeoutMs ?? 600_000} ms`)
      await sleep(Math.min(interval, left), o.signal)
      interval = Math.min(interval * 2, o.maxIntervalMs ?? 5_000)
    }
  }

  return {
    api,
    runs: {
      get: getRun,
      trigger,
      waitFor: waitForRun,
      triggerAndWait: async (workflowId: string, o: TriggerOptions & WaitOptions = {}): Promise<Run> => waitForRun((await trigger(workflowId, o)).id, o),
      cancel: async (runId: string, reason?: string): Promise<Run> =>
        unwrap(await api.POST('/v1/runs/{id}/cancel', { params: { path: { id: runId } }, body: reason ? { reason } : {} })),
    },
    tokens: {
      subscriber: async (o: SubscriberTokenOptions): Promise<TokenCreated> => unwrap(await api.POST('/v1/tokens', {
        body: { scope: 'read', ...(o.runIds && { run_ids: o.runIds }), ...(o.workflowIds && { workflow_ids: o.workflowIds }), ...(o.tags && { tags: o.tags }), ...(o.ttlSeconds && { ttl_seconds: o.ttlSeconds }) },
      })),
      trigger: async (o: TriggerTokenOptions): Promise<TokenCreated> => unwrap(await api.POST('/v1/tokens', {
        body: { scope: 'trigger', workflow_id: o.workflowId, ...(o.maxRuns && { max_runs: o.maxRuns }), ...(o.ttlSeconds && { ttl_seconds: o.ttlSeconds }) },
      })),
    },
  }
}
