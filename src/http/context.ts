import { zValidator } from '@hono/zod-validator'
import type { MiddlewareHandler } from 'hono'
import type { z } from 'zod'
import type { SecretBox } from '../core/crypto.ts'
import type { Clock, Metrics } from '../core/ports.ts'
import { decodeCursor, type Store } from '../db/store.ts'
import type { Binder } from '../services/binder.ts'
import type { ScheduleEngine } from '../services/scheduling.ts'
import type { authenticate, authMiddleware, TokenVerifier } from './auth.ts'
import { assertJsonDepth } from './body.ts'
import { ApiError, validationError } from './errors.ts'
import type { RunHosts, Streams } from './hosts.ts'
import type { KeyRateLimiter } from './rate-limit.ts'
import type { RouteDoc } from './openapi.ts'

/**
 * What route modules share with the app that registers them: its dependencies, the auth
 * middleware, validation and cursors. A module of its own, so the arrows run app → routes → here.
 */

export interface AppConfig {
  /** Public base URL (for callback URLs and the OpenAPI server): read, never set (a runtime may learn it late, see runtime/compose.ts). */
  readonly publicUrl: string
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

/** What GET /metrics needs from the runtime (Node and Deno). */
export interface MetricsDeps {
  /** The Prometheus text exposition. */
  scrape(): Promise<{ contentType: string; body: string }>
  /** A bearer token that may read /metrics besides the root key (RUNRELAY_METRICS_TOKEN). */
  token?: string
}

/** Everything a runtime hands the app: the app itself imports no runtime. */
export interface AppDeps {
  store: Store
  /** The per-key limiter (Node/Deno: one shared with the other processes); default in memory per instance. */
  keyRateLimiter?: KeyRateLimiter
  secrets: SecretBox
  binder: Binder
  /** The schedule engine (the runtime's jobs loop drives the same one). */
  schedules: ScheduleEngine
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
  /** The metrics port, where the app counts what it sees (store errors). */
  telemetry?: Metrics
  /** Middleware run first on every request, after the request id (tracing). */
  middleware?: MiddlewareHandler[]
  /** Log every request (RUNRELAY_LOG=debug). */
  accessLog?: boolean
}

type Target = 'json' | 'query' | 'param'
const where: Record<Target, string> = { json: 'body', query: 'query', param: 'path' }

/** zod validation answering runrelay's 400 format. */
export const valid = <T extends z.ZodType, K extends Target>(target: K, schema: T) => {
  const validator = zValidator(target, schema, (result) => {
    if (!result.success) throw validationError(result.error, where[target])
  })
  if (target !== 'json') return validator
  // JSON bodies: too deep a nesting is refused before zod (or anything after it) recurses into it.
  const guarded: typeof validator = async (c, next) => { await assertJsonDepth(c); return validator(c, next) }
  return guarded
}

/** What every route module is given: the auth middleware (rate-limited per key) and the app's route documentation. */
export interface RouteContext {
  auth: ReturnType<typeof authMiddleware>
  authenticate: ReturnType<typeof authenticate>
  /** Register a route's documentation in this app's OpenAPI document (and return it, so the route uses the same path). */
  documented: (doc: RouteDoc) => RouteDoc
}

/** The decoded cursor of a list request, or a 400. */
export function cursorOf(cursor: string | undefined): [number, string] | null {
  if (!cursor) return null
  const decoded = decodeCursor(cursor)
  if (!decoded) throw new ApiError(400, 'validation_failed', 'invalid cursor', [{ path: 'query.cursor', message: 'invalid cursor' }])
  return decoded
}
