import type { Connector, ConnectorContext } from './connector.ts'
import type { RunPatch, RunRecord } from './run.ts'
import type { NewEvent, PollPolicy, RunEvent } from './domain.ts'
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
