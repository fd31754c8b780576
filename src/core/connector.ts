import type { z } from 'zod'
import type { ErrorInfo, RunStatus } from './domain.ts'

/**
 * The connector contract. A connector speaks one upstream's API with `fetch` only (no
 * runtime imports), maps the upstream's statuses to runrelay's and keeps the raw answer.
 * Errors are thrown as UpstreamError so the watcher can tell transient from final.
 */

/** What a connector sees of the connection (credentials already decrypted). */
export interface ConnectionView {
  id: string
  provider: string
  baseUrl: string
  /** Non-secret provider options, validated by the connector's `connectionConfig`. */
  config: Record<string, unknown>
  /** Secret values (API keys, passwords, tokens), validated by `credentials`. */
  credentials: Record<string, string>
}

/** What a connector sees of the workflow binding. */
export interface WorkflowView {
  id: string
  upstreamWorkflowId: string
  /** Provider options for this workflow, validated by the connector's `workflowConfig`. */
  config: Record<string, unknown>
  /**
   * Whether the workflow has an input template. Without one a run's input is a copy of its
   * variables (the default mapping), which a connector that places variables itself ignores.
   */
  hasInputTemplate?: boolean
}

/** Bytes of an upstream answer read before it is cut off (RUNRELAY_MAX_UPSTREAM_BODY_BYTES). */
export const DEFAULT_MAX_UPSTREAM_BODY_BYTES = 4 * 1024 * 1024

export interface ConnectorContext {
  /** Outbound fetch: private-network guard, per-connection rate budget and timeout applied. */
  fetch: typeof fetch
  connection: ConnectionView
  workflow: WorkflowView
  /** The run's signed callback URL, for upstreams that push (empty when not known). */
  callbackUrl: string
  /** Milliseconds since the epoch, from the injected clock. */
  now(): number
  /**
   * Mutable cache shared by calls on the same connection in this process (e.g. a JWT
   * obtained by exchanging a password). Never persisted.
   */
  cache: Map<string, unknown>
  /**
   * Ids of the other unfinished runs (in runrelay) of this upstream workflow on this connection,
   * for upstreams whose commands or settings act on a whole workflow rather than one run.
   * Absent outside a run (connection tests, the proxy).
   */
  otherActiveRuns?(): Promise<string[]>
  /**
   * Bytes of one upstream answer that are read; a longer answer is cut off while it streams
   * (its body cancelled) and fails the call. Default DEFAULT_MAX_UPSTREAM_BODY_BYTES.
   */
  maxAnswerBytes?: number
}

export interface TriggerRequest {
  runId: string
  /** The workflow's input template with the run's variables filled in. */
  input: unknown
  /** `{{name}}` values of the run. */
  variables: Record<string, unknown>
  /** `[[name]]` values of the run. */
  runtimeVariables: Record<string, unknown>
}

/** An observation of the upstream run, from a trigger answer, a poll or a callback. */
export interface Observation {
  /** runrelay status; undefined when the upstream status is unknown (the run keeps its status). */
  status?: RunStatus
  /** The upstream's own status word. */
  upstreamStatus?: string
  /** 0..1 */
  progress?: number
  /** A short human message about the current step. */
  message?: string
  result?: unknown
  error?: ErrorInfo
  /**
   * Outputs the upstream produced so far. Each has a key unique within the run; the watcher
   * emits one run.output event per key it has not seen before.
   */
  outputs?: Array<{ key: string; data: unknown }>
  /** The raw upstream answer, kept as the run's last raw answer. */
  raw?: unknown
  /** Connector state to keep with the run (JSON), handed back on the next poll. */
  state?: Record<string, unknown>
  /** Earliest time (ms epoch) the upstream wants to be asked again. */
  notBefore?: number
}

export interface TriggerResult extends Observation {
  upstreamId: string
}

export type CommandName = 'cancel' | 'pause' | 'resume' | 'input'

export interface RunRef {
  runId: string
  upstreamId: string
  state: Record<string, unknown>
}

export interface UpstreamWorkflow {
  id: string
  name?: string
  description?: string
  raw?: unknown
}

/** A vendor-native call that went through the drop-in proxy, with the upstream's answer. */
export interface ProxiedCall {
  method: string
  /** Path relative to the connection's base URL, with a leading slash and without the query. */
  path: string
  query: URLSearchParams
  /** The request body as JSON (undefined when empty or not JSON). */
  requestBody: unknown
  status: number
  /** The upstream's answer as JSON (undefined when not JSON). */
  responseBody: unknown
}

/** The proxied call was this vendor's trigger: watch `upstreamId` as a run of `upstreamWorkflowId`. */
export interface ProxyTriggerMatch extends Observation {
  upstreamWorkflowId: string
  upstreamId: string
}

export interface Connector {
  provider: string
  /** zod schema for the connection's non-secret config. */
  connectionConfig: z.ZodType<Record<string, unknown>>
  /** zod schema for the connection's credentials (secrets). */
  credentials: z.ZodType<Record<string, string>>
  /** zod schema for a workflow's config. */
  workflowConfig: z.ZodType<Record<string, unknown>>
  /** zod schema a workflow's `input_template` must match, where the upstream takes a fixed body shape. */
  inputTemplate?: z.ZodType<unknown>
  /** Default poll policy for workflows on this provider (the vendor's own guidance). */
  defaultPollPolicy?: Partial<{ firstIntervalMs: number; maxIntervalMs: number; deadlineMs: number }>

  trigger(ctx: ConnectorContext, req: TriggerRequest): Promise<TriggerResult>
  /** Absent for upstreams without a status endpoint (completion comes from a callback). */
  poll?(ctx: ConnectorContext, run: RunRef): Promise<Observation>
  /** Commands the upstream supports. A missing one answers 409 to the user. */
  commands?: Partial<Record<CommandName, (ctx: ConnectorContext, run: RunRef, payload: unknown) => Promise<Observation | void>>>
  listWorkflows?(ctx: ConnectorContext): Promise<UpstreamWorkflow[]>
  /** A cheap authenticated request proving the connection works. */
  testConnection?(ctx: ConnectorContext): Promise<{ ok: boolean; message: string }>
  /** Map a callback body the upstream pushed to the run's callback URL. */
  parseCallback?(ctx: ConnectorContext, run: RunRef, body: unknown): Observation
  /**
   * For account-wide webhooks (one URL per connection, like Wokelo's): the upstream id of the
   * run a pushed body is about, so the connection's callback URL can route it.
   */
  callbackUpstreamId?(body: unknown): string | undefined
  /**
   * The headers that authenticate a request to this upstream (drop-in proxy). The proxy drops
   * the caller's own auth headers and these names, then sets these.
   */
  authHeaders?(ctx: ConnectorContext): Promise<Record<string, string>>
  /** Whether a proxied call was the vendor's trigger, and which upstream run it started. */
  matchTrigger?(call: ProxiedCall): ProxyTriggerMatch | null
  /**
   * Called once, best effort, after the run has ended (any terminal status), to undo what
   * `trigger` set up upstream (e.g. a workflow-wide callback target). Errors are ignored.
   */
  finished?(ctx: ConnectorContext, run: RunRef): Promise<void>
  /**
   * Whether the upstream answers a repeated trigger carrying the same `Idempotency-Key` with
   * the job it already made (its API page says so). Only then is a trigger whose outcome is
   * unknown resent. Absent or false: never resent (see reconcileTrigger).
   */
  honoursIdempotencyKey?: boolean | ((ctx: ConnectorContext) => boolean)
  /**
   * Find the job a trigger whose outcome is unknown may have started (a crash or a timeout
   * after the request left), through the vendor's API (e.g. a list of executions): the job
   * when found, null when the vendor certainly has none.
   */
  reconcileTrigger?(ctx: ConnectorContext, req: TriggerRequest & { sentAt: number }): Promise<TriggerResult | null>
}

/**
 * The code of the error a cancel command throws when it must not reach the upstream (the
 * upstream would stop more than this run): the run is canceled in runrelay only.
 */
export const CANCEL_NOT_FORWARDED = 'cancel_not_forwarded'

/**
 * An upstream failure. `transient` ones (timeouts, resets, 408/425/429, 5xx, malformed
 * JSON) are retried with backoff; the rest fail the run with this error kept.
 */
export class UpstreamError extends Error {
  readonly transient: boolean
  readonly status?: number
  readonly code: string
  readonly body?: unknown
  /** ms epoch before which the upstream must not be called again (from Retry-After). */
  readonly notBefore?: number

  constructor(opts: { message: string; code: string; transient: boolean; status?: number; body?: unknown; notBefore?: number }) {
    super(opts.message)
    this.name = 'UpstreamError'
    this.transient = opts.transient
    this.status = opts.status
    this.code = opts.code
    this.body = opts.body
    this.notBefore = opts.notBefore
  }

  toInfo(): ErrorInfo {
    return { code: this.code, message: this.message, status: this.status, body: this.body }
  }
}
