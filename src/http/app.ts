import { zValidator } from '@hono/zod-validator'
import { Hono, type MiddlewareHandler } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import { cors } from 'hono/cors'
import { requestId } from 'hono/request-id'
import type { z } from 'zod'
import type { Binder } from '../core/binding.ts'
import type { SecretBox } from '../core/crypto.ts'
import type { Clock } from '../core/ports.ts'
import { decodeCursor, type Store } from '../db/store.ts'
import { authenticate, authMiddleware, credentialOf, type AuthEnv, type TokenVerifier } from './auth.ts'
import { assertJsonDepth } from './body.ts'
import { ApiError, errorResponse, toApiError, validationError } from './errors.ts'
import { KeyRateLimiter } from './rate-limit.ts'
import { accessLog } from './request-log.ts'
import type { RunHosts, Streams } from './hosts.ts'
import { buildAsyncApi } from './asyncapi.ts'
import { buildOpenApi, documented } from './openapi.ts'
import { registerAdminRoutes } from './routes/admin.ts'
import { registerConnectionRoutes } from './routes/connections.ts'
import { registerMetricsRoutes, type MetricsDeps } from './routes/metrics.ts'
import { registerProxyRoutes } from './routes/proxy.ts'
import { registerRunRoutes } from './routes/runs.ts'
import { registerScheduleRoutes } from './routes/schedules.ts'
import { registerSummaryRoutes } from './routes/summary.ts'
import { registerTokenRoutes, tokenService } from './routes/tokens.ts'
import { registerUiRoutes } from './routes/ui.ts'
import { registerWorkflowRoutes } from './routes/workflows.ts'
import { registerWebhookRoutes } from './routes/webhooks.ts'

export interface AppConfig {
  /** Public base URL (for callback URLs and the OpenAPI server). */
  publicUrl: string
  /** Let connections point at loopback/private addresses (tests, on-premises upstreams). */
  allowPrivateNetwork: boolean
  maxBodyBytes: number
  idempotencyTtlMs: number
  version: string
  /** API requests per key (or subscriber token) per minute; 0 turns the limit off. Default 6000. */
  rateLimitPerMinute?: number
  /** Origins browsers may call the API from (CORS); default any. */
  corsOrigins?: string | string[]
}

/** Everything a runtime hands the app: the app itself imports no runtime. */
export interface AppDeps {
  store: Store
  /** The per-key limiter (Node/Deno: one shared with the other processes); default in memory per instance. */
  keyRateLimiter?: KeyRateLimiter
  secrets: SecretBox
  binder: Binder
  hosts: RunHosts
  streams: Streams
  clock: Clock
  config: AppConfig
  /** Refuses outbound URLs that reach private networks (unless allowed). */
  checkUrl(url: string): Promise<void>
  tokens?: TokenVerifier
  log?: (msg: string, extra?: Record<string, unknown>) => void
  /** GET /metrics (Node and Deno). */
  metrics?: MetricsDeps
  /** Middleware run first on every request, after the request id (tracing). */
  middleware?: MiddlewareHandler[]
  /** Log every request (RUNRELAY_LOG=debug). */
  accessLog?: boolean
}

/** URLs longer than this get 414 (on Node also past its 16 KiB header limit: see runtime/node/main.ts). */
export const MAX_URL_BYTES = 8192
/** The 414 for a URL over MAX_URL_BYTES. */
export const uriTooLong = () => new ApiError(414, 'uri_too_long', 'URL is longer than 8 KiB')

type Target = 'json' | 'query' | 'param'
const where: Record<Target, string> = { json: 'body', query: 'query', param: 'path' }

/** zod validation answering runrelay's 400 format. */
export const valid = <T extends z.ZodType, K extends Target>(target: K, schema: T) => {
  const validator = zValidator(target, schema, (result) => {
    if (!result.success) throw validationError(result.error as unknown as z.ZodError, where[target])
  })
  if (target !== 'json') return validator
  // JSON bodies: too deep a nesting is refused before zod (or anything after it) recurses into it.
  const guarded: typeof validator = async (c, next) => { await assertJsonDepth(c); return validator(c, next) }
  return guarded
}

export interface RouteContext {
  auth: ReturnType<typeof authMiddleware>
  authenticate: ReturnType<typeof authenticate>
}

/** Builds the runrelay HTTP app over the given runtime dependencies. */
export function createApp(deps: AppDeps): Hono<AuthEnv> {
  deps = { ...deps, tokens: deps.tokens ?? tokenService(deps) }
  const app = new Hono<AuthEnv>()
  const authn = authenticate(deps.store, deps.tokens, () => deps.clock.now())
  const limiter = deps.keyRateLimiter ?? new KeyRateLimiter(deps.config.rateLimitPerMinute ?? 6_000, () => deps.clock.now())
  const authMw = authMiddleware(authn)
  // Every authenticated request draws from its key's bucket (a token's own bucket for subscriber tokens).
  const limited: typeof authMw = (need, opts) => {
    const mw = authMw(need, opts)
    return (c, next) => mw(c, async () => {
      const p = c.get('principal')
      limiter.take(p.kind === 'token' ? `tok:${p.tenantId}:${(credentialOf(c, true) ?? '').slice(-22)}` : `key:${p.keyId}`)
      await next()
    })
  }
  const ctx: RouteContext = { auth: limited, authenticate: authn }

  app.onError((err, c) => {
    const apiErr = toApiError(err)
    if (apiErr.status >= 500) deps.log?.('request failed', { request_id: c.get('requestId'), method: c.req.method, path: c.req.path, error: String((err as Error)?.stack ?? err) })
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
    await deps.store.getSetting('schema')
    return c.json({ ok: true, version: deps.config.version })
  })
  documented({ method: 'get', path: '/openapi.json', summary: 'This OpenAPI document', tag: 'meta', auth: 'none', operationId: 'getOpenApi' })
  app.get('/openapi.json', (c) => c.json(buildOpenApi({ title: 'runrelay', version: deps.config.version, serverUrl: deps.config.publicUrl })))
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


/** The decoded cursor of a list request, or a 400. */
export function cursorOf(cursor: string | undefined): [number, string] | null {
  if (!cursor) return null
  const decoded = decodeCursor(cursor)
  if (!decoded) throw new ApiError(400, 'validation_failed', 'invalid cursor', [{ path: 'query.cursor', message: 'invalid cursor' }])
  return decoded
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
