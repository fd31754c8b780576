import type { CommandName, Connector, ConnectorContext, Observation } from './connector.ts'
import type { RunPatch, RunRecord } from './run.ts'
import type { NewEvent, PollPolicy, RunEvent, RunStatus } from './domain.ts'
import type { DurationModel } from './poll-planner.ts'
import type { CounterName, GaugeName, HistogramName, MetricLabels } from './metrics.ts'

/** Time, injected so the watcher is tested with a fake clock. */
export interface Clock { now(): number }
export const systemClock: Clock = { now: () => Date.now() }

/**
 * Where a run's changes go: `commit` persists the patch and the new events (assigning seqs)
 * and only then publishes them. Node/Deno back it with libSQL directly; Workers with the
 * Durable Object's storage as an outbox in front of libSQL.
 */
export interface RunLedger {
  getRun(runId: string): Promise<RunRecord | undefined>
  commit(run: RunRecord, patch: RunPatch, events: NewEvent[]): Promise<{ run: RunRecord; events: RunEvent[] }>
  /** Whether this writer still holds the run (its lease): false once lost. Absent: always. */
  holds?(runId: string): boolean
}

/** A conditional write of a run lost a race (another writer, or a stale lease): re-read and decide again. */
export class WriteConflictError extends Error {}

/** Fan-out of persisted events to live subscribers. */
export interface Publisher { publish(tenantId: string, events: RunEvent[]): void }

/** The connector of a run with its context (credentials decrypted, guarded fetch) and policy. */
export interface ConnectorBinding {
  connector: Connector
  ctx: ConnectorContext
  policy: PollPolicy
  /** How long this workflow's runs take, once it has enough history (adaptive polling). */
  durations?: DurationModel
  /** The workflow's choice for a trigger whose outcome is unknown: never resend blindly, or resend (duplicates harmless). */
  triggerRetry?: 'at_most_once' | 'at_least_once'
}

export type BindConnector = (run: RunRecord) => Promise<ConnectorBinding>

/**
 * Where runrelay's counters go (see METRICS in metrics.ts for every name). The core calls it;
 * Node and Deno back it with a Prometheus registry, elsewhere it is `noMetrics`.
 */
export interface Metrics {
  /** Add `by` (default 1) to a counter. */
  inc(name: CounterName, labels?: MetricLabels, by?: number): void
  /** Move a gauge by `delta`. */
  add(name: GaugeName, labels: MetricLabels, delta: number): void
  /** One observation of a histogram, in seconds. */
  observe(name: HistogramName, labels: MetricLabels, seconds: number): void
}
export const noMetrics: Metrics = { inc() {}, add() {}, observe() {} }

export type SpanAttributes = Record<string, string | number | boolean>
/** A span while it runs: attributes learnt on the way. */
export interface SpanHandle { set(key: string, value: string | number | boolean): void }
/** An opaque reference to a span, to parent work that runs later (a queued write under its tick). */
export type SpanParent = { readonly spanParent: true }

/**
 * Tracing of trigger → poll → persist → publish. The runtime wires OpenTelemetry when an OTLP
 * endpoint is configured; otherwise it is `noTracer`, which only calls `fn` (nothing loaded).
 */
export interface Tracer {
  /**
   * Run `fn` in a span named `name`, a child of `parent` or else of the active span. A promise
   * ends the span when it settles (a rejection is recorded); anything else ends it at once.
   * `fn` gets a handle while tracing, undefined otherwise.
   */
  span<T>(name: string, attributes: SpanAttributes, fn: (span: SpanHandle | undefined) => T, parent?: SpanParent): T
  /** The active span, or undefined (always, when not tracing). */
  current(): SpanParent | undefined
}
export const noTracer: Tracer = { span: (_name, _attributes, fn) => fn(undefined), current: () => undefined }

/**
 * Where runs live (timers, commands), as the HTTP app and the jobs see it: in-process on
 * Node/Deno/Bun, a Durable Object per run on Workers. `NewRun` is the store's new-run row and
 * `Run` its run row (the store owns their columns; the core only needs that a run is a RunRecord).
 */
export interface RunHosts<NewRun, Run extends RunRecord = RunRecord> {
  /** Persist a new run with its run.created event, publish it, and start watching it. */
  create(row: NewRun, created: NewEvent): Promise<Run>
  command(run: Run, name: CommandName, payload: unknown, by: string): Promise<Run>
  /** An observation the upstream pushed to the run's callback URL. */
  push(run: Run, obs: Observation): Promise<void>
}

/** Which feed events a subscriber wants (each list, when given, must match; tags: any of them). */
export interface FeedFilter {
  runIds?: string[]
  workflowIds?: string[]
  statuses?: RunStatus[]
  tags?: string[]
}

/** A stream the app has authorized: what to replay from, what to follow, and how long it may live. */
export interface StreamRequest {
  tenantId: string
  transport: 'ws' | 'sse'
  /** A run stream resumes after a seq; the feed after an event id. */
  after: number
  runId?: string
  filter?: FeedFilter
  /** Subscriber-token streams can refresh their token over the socket. */
  refresh?: (token: string) => Promise<{ expiresAt: number } | null>
  /** A run stream of a run that had finished when it was opened: it ends once its replay is sent. */
  finished?: boolean
  /** When the credential used to open the stream stops being valid (ms epoch). */
  expiresAt?: number
  /**
   * Token streams: whether the token (the last one refreshed) is still in force, i.e. not revoked
   * since the stream opened (its key, its id, or a tenant's revoke-all). A stream that checks it
   * periodically closes with 4001 (as at expiry) when it answers false.
   */
  inForce?: () => Promise<boolean>
}

/** Opens streams for the app; `Ctx` is the HTTP framework's request context (the upgrade needs it). */
export interface Streams<Ctx> {
  open(c: Ctx, req: StreamRequest): Response | Promise<Response>
}
