import { isTerminal, type RunEvent } from './domain.ts'
import { noTracer, type Metrics, type SpanHandle, type Tracer } from './ports.ts'

/**
 * Every metric runrelay reports: the single list the runtime's registry is built from and the
 * README's Observability section describes. Durations are in seconds (Prometheus convention).
 */
export const METRICS = {
  runrelay_runs: { type: 'gauge', help: 'Unfinished runs in the store by status (read at scrape time)', labels: ['status'] },
  runrelay_runs_finished_total: { type: 'counter', help: 'Runs that reached a terminal status here, by status', labels: ['status'] },
  runrelay_ticks_total: { type: 'counter', help: 'Watcher ticks that called the upstream, by phase (trigger, poll, timeout) and outcome (ok, error)', labels: ['phase', 'outcome'] },
  runrelay_tick_duration_seconds: { type: 'histogram', help: 'Duration of a tick, upstream call and write included, by phase', labels: ['phase'] },
  runrelay_upstream_requests_total: { type: 'counter', help: 'Requests to upstreams by provider and HTTP status (or network_error, timeout)', labels: ['provider', 'status'] },
  runrelay_upstream_request_duration_seconds: { type: 'histogram', help: 'Time to an upstream answer (its headers), by provider', labels: ['provider'] },
  runrelay_upstream_errors_total: { type: 'counter', help: 'Failed triggers and polls by provider, phase, error code and whether they are retried', labels: ['provider', 'phase', 'code', 'transient'] },
  runrelay_events_persisted_total: { type: 'counter', help: 'Events written to the store, by type', labels: ['type'] },
  runrelay_events_published_total: { type: 'counter', help: 'Events handed to live subscribers after their write', labels: [] },
  runrelay_subscribers: { type: 'gauge', help: 'Open subscriber streams by transport (ws, sse) and stream (run, feed)', labels: ['transport', 'stream'] },
  runrelay_native_topic_subscribers: { type: 'gauge', help: 'Caught-up WebSocket subscribers (run and feed) served by the runtime\'s native topics (Bun)', labels: [] },
  runrelay_slow_consumer_closes_total: { type: 'counter', help: 'Subscribers closed for reading too slowly, by transport', labels: ['transport'] },
  runrelay_webhook_deliveries_total: { type: 'counter', help: 'Webhook delivery attempts by outcome (succeeded, retrying, failed, gone)', labels: ['outcome'] },
  runrelay_bus_lag_seconds: { type: 'histogram', help: 'Several processes: time from an event\'s commit to its notification in another process', labels: [] },
  runrelay_store_errors_total: { type: 'counter', help: 'Database faults (unreachable, timed out, locked) seen by the API, /healthz, ticks and the lease pass', labels: ['where'] },
  runrelay_lease_takeovers_total: { type: 'counter', help: 'Several processes: runs taken over from a process whose lease expired', labels: [] },
} as const satisfies Record<string, { type: 'counter' | 'gauge' | 'histogram'; help: string; labels: readonly string[] }>

type Catalogue = typeof METRICS
type Named<T extends string> = { [K in keyof Catalogue]: Catalogue[K]['type'] extends T ? K : never }[keyof Catalogue]
export type CounterName = Named<'counter'>
export type GaugeName = Named<'gauge'>
export type HistogramName = Named<'histogram'>
export type MetricLabels = Readonly<Record<string, string>>

/** Counts what a commit wrote: events by type, and the run's terminal status if it reached one. */
export function countCommitted(metrics: Metrics, events: readonly RunEvent[]): void {
  for (const e of events) {
    metrics.inc('runrelay_events_persisted_total', { type: e.type })
    if (e.type === 'run.status_changed' && isTerminal(e.status)) metrics.inc('runrelay_runs_finished_total', { status: e.status })
  }
}

/**
 * The fetch of one provider, counted (requests by status, latency) and traced (a
 * `runrelay.upstream` span with the method and host only: URLs can carry credentials).
 */
export function instrumentFetch(f: typeof fetch, provider: string, metrics: Metrics, tracer: Tracer): typeof fetch {
  const measured = async (input: RequestInfo | URL, init: RequestInit | undefined, span: SpanHandle | undefined): Promise<Response> => {
    const started = performance.now()
    let status = 'network_error'
    try {
      const res = await f(input, init)
      status = String(res.status)
      span?.set('http.response.status_code', res.status)
      return res
    } catch (err) {
      const name = (err as Error)?.name
      if (name === 'TimeoutError' || name === 'AbortError') status = 'timeout'
      throw err
    } finally {
      metrics.inc('runrelay_upstream_requests_total', { provider, status })
      metrics.observe('runrelay_upstream_request_duration_seconds', { provider }, (performance.now() - started) / 1000)
    }
  }
  // Without tracing, no span's attributes (a URL parsed per request) are built for nothing.
  if (tracer === noTracer) return (input, init) => measured(input, init, undefined)
  return (input, init) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url
    const method = (init?.method ?? (input instanceof Request ? input.method : 'GET')).toUpperCase()
    let host = ''
    try { host = new URL(url).host } catch { /* the fetch itself reports a bad URL */ }
    return tracer.span('runrelay.upstream', { 'runrelay.provider': provider, 'http.request.method': method, 'server.address': host }, (span) => measured(input, init, span))
  }
}
