import { Hono } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import { cors } from 'hono/cors'
import { requestId } from 'hono/request-id'
import { authenticate, authMiddleware, type AuthEnv } from './auth.ts'
import { limiterKey } from './tokens.ts'
import type { AppDeps, RouteContext } from './context.ts'
import { isStoreUnavailable } from '../db/store-errors.ts'
import { ApiError, errorResponse, STORE_RETRY_AFTER_S, toApiError } from './errors.ts'
import { KeyRateLimiter } from './rate-limit.ts'
import { accessLog } from './request-log.ts'
import { buildAsyncApi } from './asyncapi.ts'
import { buildOpenApi, RouteDocs } from './openapi.ts'
import { registerAdminRoutes } from './routes/admin.ts'
import { registerConnectionRoutes } from './routes/connections.ts'
import { registerMetricsRoutes } from './routes/metrics.ts'
import { registerProxyRoutes } from './routes/proxy.ts'
import { registerRunRoutes } from './routes/runs.ts'
import { registerScheduleRoutes } from './routes/schedules.ts'
import { registerSummaryRoutes } from './routes/summary.ts'
import { registerTokenRoutes, tokenService } from './routes/tokens.ts'
import { registerUiRoutes } from './routes/ui.ts'
import { registerWorkflowRoutes } from './routes/workflows.ts'
import { registerWebhookRoutes } from './routes/webhooks.ts'

/** URLs longer than this get 414 (on Node also past its 16 KiB header limit: see runtime/node/main.ts). */
export const MAX_URL_BYTES = 8192
/** The 414 for a URL over MAX_URL_BYTES. */
export const uriTooLong = () => new ApiError(414, 'uri_too_long', 'URL is longer than 8 KiB')

/** Builds the runrelay HTTP app over the given runtime dependencies; its routes are documented in `docs`. */
export function createApp(deps: AppDeps, docs: RouteDocs = new RouteDocs()): Hono<AuthEnv> {
  const documented = docs.add
  deps = { ...deps, tokens: deps.tokens ?? tokenService(deps) }
  const app = new Hono<AuthEnv>()
  const unlimited = authenticate(deps.store, deps.tokens, () => deps.clock.now())
  const limiter = deps.keyRateLimiter ?? new KeyRateLimiter(deps.config.rateLimitPerMinute ?? 6_000, () => deps.clock.now())
  // Every authenticated request (every route, /v1/me included) draws from the bucket of the
  // verified identity: the key's id, or the token's id. Never the credential's text, which can
  // be spelled many ways that verify alike.
  const authn: typeof unlimited = async (c, allowTokens) => {
    const p = await unlimited(c, allowTokens)
    limiter.take(limiterKey(p))
    return p
  }
  const limited = authMiddleware(authn)
  const ctx: RouteContext = { auth: limited, authenticate: authn, documented }

  app.onError((err, c) => {
    const apiErr = toApiError(err)
    if (apiErr.code === 'store_unavailable') {
      // A fault of the database, not of this code: one short line (no stack), counted.
      deps.telemetry?.inc('runrelay_store_errors_total', { where: 'api' })
      deps.log?.('request failed: database unavailable (503)', { request_id: c.get('requestId'), method: c.req.method, path: c.req.path, error: String((err as Error)?.cause ?? (err as Error)?.message ?? err).slice(0, 300) })
    } else if (apiErr.status >= 500) deps.log?.('request failed', { request_id: c.get('requestId'), method: c.req.method, path: c.req.path, error: String((err as Error)?.stack ?? err) })
    return errorResponse(c, apiErr)
  })
  // Every answer carries X-Request-Id (a sane incoming one is kept), and so do error bodies and log lines.
  app.use('*', requestId())
  if (deps.accessLog && deps.log) app.use('*', accessLog(deps.log))
  for (const mw of deps.middleware ?? []) app.use('*', mw)
  app.notFound((c) => errorResponse(c, new ApiError(404, 'not_found', `no route for ${c.req.method} ${c.req.path}`)))
  // Browsers on other origins may call the API: credentials travel in headers, never cookies.
  app.use('/v1/*', cors({
    origin: deps.config.corsOrigins ?? '*',
    allowMethods: ['GET', 'POST', 'PATCH', 'PUT', 'DELETE', 'OPTIONS'],
    allowHeaders: ['authorization', 'x-api-key', 'content-type', 'idempotency-key', 'last-event-id'],
    exposeHeaders: ['retry-after', 'idempotent-replayed', 'runrelay-run-id', 'runrelay-workflow-id'],
    maxAge: 600,
  }))
  app.use('*', async (c, next) => {
    // Query strings and headers are bounded too (the body limit is below).
    if (c.req.url.length > MAX_URL_BYTES) throw uriTooLong()
    await next()
  })
  app.use('/v1/*', bodyLimit({
    maxSize: deps.config.maxBodyBytes,
    onError: async (c) => {
      // Read (and drop) what the client is still sending, so it gets the 413 instead of a reset.
      await drain(c.req.raw.body, 8 * deps.config.maxBodyBytes, 2_000)
      // The rest of the body is not read: the connection cannot carry another request, and saying
      // so lets keep-alive clients read this answer instead of reusing a socket that closes.
      throw new ApiError(413, 'payload_too_large', `request body is larger than ${deps.config.maxBodyBytes} bytes`, [], { connection: 'close' })
    },
  }))

  const health = documented({ method: 'get', path: '/healthz', summary: 'Health check', tag: 'meta', auth: 'none', operationId: 'getHealth' })
  app.get(health.path, async (c) => {
    try {
      await deps.store.settings.get('schema')
    } catch (err) {
      // Down is an answer here, not an error: 503 with the part that is down, for load balancers and people.
      deps.telemetry?.inc('runrelay_store_errors_total', { where: 'healthz' })
      c.header('Retry-After', String(STORE_RETRY_AFTER_S))
      return c.json({ ok: false, version: deps.config.version, db: 'down', error: isStoreUnavailable(err) ? 'store_unavailable' : 'store_error' }, 503)
    }
    return c.json({ ok: true, version: deps.config.version, db: 'up' })
  })
  documented({ method: 'get', path: '/openapi.json', summary: 'This OpenAPI document', tag: 'meta', auth: 'none', operationId: 'getOpenApi' })
  app.get('/openapi.json', (c) => c.json(buildOpenApi(docs.all(), { title: 'runrelay', version: deps.config.version, serverUrl: deps.config.publicUrl })))
  documented({ method: 'get', path: '/asyncapi.json', summary: 'The AsyncAPI 3 document of the WebSocket and SSE streams', tag: 'meta', auth: 'none', operationId: 'getAsyncApi' })
  app.get('/asyncapi.json', (c) => c.json(buildAsyncApi({ title: 'runrelay', version: deps.config.version, publicUrl: deps.config.publicUrl })))

  registerAdminRoutes(app, deps, ctx)
  registerConnectionRoutes(app, deps, ctx)
  registerWorkflowRoutes(app, deps, ctx)
  registerRunRoutes(app, deps, ctx)
  registerTokenRoutes(app, deps, ctx)
  registerUiRoutes(app, deps, ctx)
  registerScheduleRoutes(app, deps, ctx)
  registerWebhookRoutes(app, deps, ctx)
  registerSummaryRoutes(app, deps, ctx)
  registerProxyRoutes(app, deps, ctx)
  registerMetricsRoutes(app, deps, ctx)
  return app
}


/** Consume a request body up to `maxBytes` or `ms`, whichever comes first. */
async function drain(body: ReadableStream<Uint8Array> | null, maxBytes: number, ms: number): Promise<void> {
  if (!body || body.locked) return
  const reader = body.getReader()
  const deadline = Date.now() + ms
  let read = 0
  try {
    while (read < maxBytes && Date.now() < deadline) {
      const timeout = new Promise<{ done: true; value: undefined }>((r) => setTimeout(() => r({ done: true, value: undefined }), Math.max(0, deadline - Date.now())))
      const { done, value } = await Promise.race([reader.read(), timeout])
      if (done) break
      read += value?.byteLength ?? 0
    }
  } catch {
    // The client went away: nothing left to drain.
  } finally {
    reader.cancel().catch(() => {})
  }
}
