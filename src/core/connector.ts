import type { z } from 'zod'
import type { ErrorInfo, RunStatus } from './domain.ts'

/**
 * The connector contract. A connector speaks one upstream's API with `fetch` only (no
 * runtime imports), maps the upstream's statuses to runrelay's and keeps the raw answer.
 * Errors are thrown as UpstreamError so the watcher can tell transient from final.
 */

/** Config values as stored: the output of a connector's schema, not yet known to a caller that holds any connector. */
export type ConfigValues = Record<string, unknown>

/** What a connector sees of the connection (credentials already decrypted); `Config` is its config schema's output. */
export interface ConnectionView<Config = ConfigValues> {
  id: string
  provider: string
  baseUrl: string
  /** Non-secret provider options, validated by the connector's `connectionConfig`. */
  config: Config
  /** Secret values (API keys, passwords, tokens), validated by `credentials`. */
  credentials: Record<string, string>
}

/** What a connector sees of the workflow binding; `Config` is its workflow schema's output. */
export interface WorkflowView<Config = ConfigValues> {
  id: string
  upstreamWorkflowId: string
  /** Provider options for this workflow, validated by the connector's `workflowConfig`. */
  config: Config
  /**
   * Whether the workflow has an input template. Without one a run's input is a copy of its
   * variables (the default mapping), which a connector that places variables itself ignores.
   */
  hasInputTemplate?: boolean
}

/** Bytes of an upstream answer read before it is cut off (RUNRELAY_MAX_UPSTREAM_BODY_BYTES). */
export const DEFAULT_MAX_UPSTREAM_BODY_BYTES = 4 * 1024 * 1024

/** A call's context; a connector made with `defineConnector` sees its configs typed (`Conn`, `Wf`). */
export interface ConnectorContext<Conn = ConfigValues, Wf = ConfigValues> {
  /** Outbound fetch: private-network guard, per-connection rate budget and timeout applied. */
  fetch: typeof fetch
  connection: ConnectionView<Conn>
  workflow: WorkflowView<Wf>
  /** The run's signed callback URL, for upstreams that push (empty when not known). */
  callbackUrl: string
  /** Milliseconds since the epoch, from the injected clock. */
  now(): number
  /**
   * Mutable cache shared by calls on the same connection in this process (e.g. a JWT
   * obtained by exchanging a password). Never persisted. A secret kept here is also given to
   * `addDerivedSecret`, so it is redacted like the credentials.
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

/** Where `addDerivedSecret` keeps a connection's derived secrets: in its `cache`, which lives as long as they do. */
const DERIVED_SECRETS = 'runrelay:derived-secrets'
/** Derived secrets remembered per connection (the newest): a renewed token's predecessor may still be echoed. */
const MAX_DERIVED_SECRETS = 8

/** What the secret values of a call are read from: its connection's credentials and its cache. */
export type SecretSource = { connection: { credentials: Record<string, string> }; cache: Map<string, unknown> }

/**
 * Record a secret a connector derived from the connection's credentials (an access token it
 * exchanged a password for): from then on it is redacted wherever the credentials are.
 */
export function addDerivedSecret(ctx: SecretSource, value: string): void {
  if (!value) return
  const held = ctx.cache.get(DERIVED_SECRETS)
  const list = Array.isArray(held) ? held.filter((v): v is string => typeof v === 'string' && v !== value) : []
  list.push(value)
  ctx.cache.set(DERIVED_SECRETS, list.slice(-MAX_DERIVED_SECRETS))
}

/** The secrets a connector derived on this connection (addDerivedSecret), oldest first. */
export function derivedSecrets(ctx: SecretSource): string[] {
  const held = ctx.cache.get(DERIVED_SECRETS)
  return Array.isArray(held) ? held.filter((v): v is string => typeof v === 'string') : []
}

/** Every value that is redacted for a connection: its credentials and the secrets derived from them. */
export function secretValues(ctx: SecretSource): string[] {
  return [...Object.values(ctx.connection.credentials), ...derivedSecrets(ctx)]
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

/** An observation of the upstream run, from a trigger answer, a poll or a callback; `State` is the connector's run state. */
export interface Observation<State = ConfigValues> {
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
  state?: State
  /** Earliest time (ms epoch) the upstream wants to be asked again. */
  notBefore?: number
}

export interface TriggerResult<State = ConfigValues> extends Observation<State> {
  upstreamId: string
}

export type CommandName = 'cancel' | 'pause' | 'resume' | 'input'

export interface RunRef<State = ConfigValues> {
  runId: string
  upstreamId: string
  state: State
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

/**
 * A connector. `Conn`, `Wf` and `State` are what its connection config, workflow config and run
 * state are (its schemas' outputs); the registry and the core hold connectors with the defaults,
 * and `defineConnector` makes one of those from a typed definition, parsing at the boundary.
 */
export interface Connector<Conn = ConfigValues, Wf = ConfigValues, State = ConfigValues> {
  provider: string
  /** zod schema for the connection's non-secret config. */
  connectionConfig: z.ZodType<Conn>
  /** zod schema for the connection's credentials (secrets). */
  credentials: z.ZodType<Record<string, string>>
  /** zod schema for a workflow's config. */
  workflowConfig: z.ZodType<Wf>
  /** zod schema a workflow's `input_template` must match, where the upstream takes a fixed body shape. */
  inputTemplate?: z.ZodType<unknown>
  /** Default poll policy for workflows on this provider (the vendor's own guidance). */
  defaultPollPolicy?: Partial<{ firstIntervalMs: number; maxIntervalMs: number; deadlineMs: number }>

  trigger(ctx: ConnectorContext<Conn, Wf>, req: TriggerRequest): Promise<TriggerResult<State>>
  /** Absent for upstreams without a status endpoint (completion comes from a callback). */
  poll?(ctx: ConnectorContext<Conn, Wf>, run: RunRef<State>): Promise<Observation<State>>
  /** Commands the upstream supports. A missing one answers 409 to the user. */
  commands?: Partial<Record<CommandName, (ctx: ConnectorContext<Conn, Wf>, run: RunRef<State>, payload: unknown) => Promise<Observation<State> | void>>>
  listWorkflows?(ctx: ConnectorContext<Conn, Wf>): Promise<UpstreamWorkflow[]>
  /** A cheap authenticated request proving the connection works. */
  testConnection?(ctx: ConnectorContext<Conn, Wf>): Promise<{ ok: boolean; message: string }>
  /** Map a callback body the upstream pushed to the run's callback URL. */
  parseCallback?(ctx: ConnectorContext<Conn, Wf>, run: RunRef<State>, body: unknown): Observation<State>
  /**
   * For account-wide webhooks (one URL per connection, like Wokelo's): the upstream id of the
   * run a pushed body is about, so the connection's callback URL can route it.
   */
  callbackUpstreamId?(body: unknown): string | undefined
  /**
   * The headers that authenticate a request to this upstream (drop-in proxy). The proxy drops
   * the caller's own auth headers and these names, then sets these.
   */
  authHeaders?(ctx: ConnectorContext<Conn, Wf>): Promise<Record<string, string>>
  /** Whether a proxied call was the vendor's trigger, and which upstream run it started. */
  matchTrigger?(call: ProxiedCall): ProxyTriggerMatch | null
  /**
   * Called once, best effort, after the run has ended (any terminal status), to undo what
   * `trigger` set up upstream (e.g. a workflow-wide callback target). Errors are ignored.
   */
  finished?(ctx: ConnectorContext<Conn, Wf>, run: RunRef<State>): Promise<void>
  /**
   * Whether the upstream answers a repeated trigger carrying the same `Idempotency-Key` with
   * the job it already made (its API page says so). Only then is a trigger whose outcome is
   * unknown resent. Absent or false: never resent (see reconcileTrigger).
   */
  honoursIdempotencyKey?: boolean | ((ctx: ConnectorContext<Conn, Wf>) => boolean)
  /**
   * Find the job a trigger whose outcome is unknown may have started (a crash or a timeout
   * after the request left), through the vendor's API (e.g. a list of executions): the job
   * when found, null when the vendor certainly has none.
   */
  reconcileTrigger?(ctx: ConnectorContext<Conn, Wf>, req: TriggerRequest & { sentAt: number }): Promise<TriggerResult<State> | null>
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
