import type { MiddlewareHandler } from 'hono'
import type { Config } from '../../config.ts'
import { VERSION } from '../../config.ts'
import type { SpanHandle, SpanParent, Tracer } from '../../core/ports.ts'

/** OpenTelemetry, wired: the tracer port, Hono's HTTP server spans, and a flush for shutdown. */
export interface Tracing {
  tracer: Tracer
  /** Server spans for every request (W3C `traceparent` honoured), query strings left out. */
  middleware: MiddlewareHandler
  shutdown(): Promise<void>
}

/** Where traces go: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as is, or OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces. */
export function tracesEndpoint(config: Config): string | undefined {
  if (config.OTEL_SDK_DISABLED || config.OTEL_TRACES_EXPORTER === 'none') return undefined
  if (config.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) return config.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
  if (config.OTEL_EXPORTER_OTLP_ENDPOINT) return `${config.OTEL_EXPORTER_OTLP_ENDPOINT.replace(/\/+$/, '')}/v1/traces`
  return undefined
}

/** `k=v,k2=v2` (OTEL_EXPORTER_OTLP_HEADERS, values URL-encoded) as headers. */
function parseHeaders(value: string | undefined): Record<string, string> {
  const headers: Record<string, string> = {}
  for (const pair of value?.split(',') ?? []) {
    const i = pair.indexOf('=')
    if (i > 0) headers[pair.slice(0, i).trim()] = decodeURIComponent(pair.slice(i + 1).trim())
  }
  return headers
}

interface ContextRef extends SpanParent { ctx: unknown }

/**
 * Tracing over OTLP/HTTP when an endpoint is configured, else undefined. The SDK is imported
 * here, only then: without an endpoint nothing of OpenTelemetry is loaded.
 */
export async function startTracing(config: Config): Promise<Tracing | undefined> {
  const url = tracesEndpoint(config)
  if (!url) return undefined
  const [api, core, sdk, { OTLPTraceExporter }, { AsyncLocalStorageContextManager }, { resourceFromAttributes }, { httpInstrumentationMiddleware }] = await Promise.all([
    import('@opentelemetry/api'), import('@opentelemetry/core'), import('@opentelemetry/sdk-trace'), import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/context-async-hooks'), import('@opentelemetry/resources'), import('@hono/otel'),
  ])
  const provider = new sdk.TracerProvider({
    resource: resourceFromAttributes({ 'service.name': config.OTEL_SERVICE_NAME, 'service.version': VERSION }),
    spanProcessors: [new sdk.BatchSpanProcessor({ exporter: new OTLPTraceExporter({ url, headers: parseHeaders(config.OTEL_EXPORTER_OTLP_HEADERS) }), scheduledDelayMillis: config.OTEL_BSP_SCHEDULE_DELAY })],
  })
  // Context follows async work (timers, promises) through AsyncLocalStorage; set once per process.
  api.context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
  api.propagation.setGlobalPropagator(new core.W3CTraceContextPropagator())
  const otel = provider.getTracer('runrelay', VERSION)

  const tracer: Tracer = {
    span(name, attributes, fn, parent) {
      const ctx = parent ? ((parent as ContextRef).ctx as ReturnType<typeof api.context.active>) : api.context.active()
      const span = otel.startSpan(name, { attributes }, ctx)
      const handle: SpanHandle = { set: (k, v) => { span.setAttribute(k, v) } }
      const failed = (err: unknown) => {
        span.recordException(err instanceof Error ? err : String(err))
        span.setStatus({ code: api.SpanStatusCode.ERROR, message: String((err as Error)?.message ?? err) })
        span.end()
      }
      let result: ReturnType<typeof fn>
      try {
        result = api.context.with(api.trace.setSpan(ctx, span), () => fn(handle))
      } catch (err) {
        failed(err)
        throw err
      }
      if (result instanceof Promise) {
        return result.then((v) => { span.end(); return v }, (err) => { failed(err); throw err }) as typeof result
      }
      span.end()
      return result
    },
    current() {
      const ctx = api.context.active()
      return api.trace.getSpan(ctx) ? ({ spanParent: true, ctx } as ContextRef) : undefined
    },
  }

  const server = httpInstrumentationMiddleware({ tracer: otel, serviceName: config.OTEL_SERVICE_NAME, serviceVersion: VERSION, captureActiveRequests: false })
  const middleware: MiddlewareHandler = (c, next) => server(c, async () => {
    // The full URL would carry subscriber tokens (?token=) and callback signatures (?sig=).
    const url = new URL(c.req.url)
    api.trace.getActiveSpan()?.setAttribute('url.full', url.origin + url.pathname)
    await next()
  })
  return { tracer, middleware, shutdown: () => provider.shutdown() }
}
