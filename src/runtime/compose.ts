import type { Hono, MiddlewareHandler } from 'hono'
import { VERSION, type Config } from '../config.ts'
import type { SecretBox } from '../core/crypto.ts'
import { checkOutboundUrl, createGuardedFetch, type ResolveHost } from '../core/outbound.ts'
import type { Clock, Metrics, Tracer } from '../core/ports.ts'
import type { RequestBudget } from '../core/rate-budget.ts'
import { IDEMPOTENCY_TTL_MS } from '../db/retention.ts'
import type { Store } from '../db/store.ts'
import { createApp } from '../http/app.ts'
import type { AuthEnv, TokenVerifier } from '../http/auth.ts'
import type { AppConfig, MetricsDeps } from '../http/context.ts'
import { ApiError } from '../http/errors.ts'
import type { RunHosts, Streams } from '../http/hosts.ts'
import { RouteDocs } from '../http/openapi.ts'
import type { KeyRateLimiter } from '../http/rate-limit.ts'
import { runBody } from '../http/serialize.ts'
import { createBinder, type Binder } from '../services/binder.ts'
import { ScheduleEngine } from '../services/scheduling.ts'
import { WebhookDispatcher } from '../services/webhook-dispatcher.ts'

/**
 * The one composition root. Every runtime (Workers and its Durable Objects, Node, Deno, Bun)
 * builds the binder, the background services (schedules, webhook deliveries), the app's config
 * and the app here, from its platform pieces; what differs
 * between runtimes is only what they pass in. It sits on the runtime floor because it builds
 * the HTTP app (services sit below http and may not).
 */

/** The settings the root reads: the shared config schema's (Workers add their own knobs on top). */
export type RootConfig = Pick<Config,
  'RUNRELAY_ALLOW_PRIVATE_NETWORK' | 'RUNRELAY_MAX_BODY_BYTES' | 'RUNRELAY_RATE_LIMIT_PER_MINUTE' | 'RUNRELAY_CORS_ORIGINS' | 'RUNRELAY_MAX_UPSTREAM_BODY_BYTES' | 'RUNRELAY_LOG'
  | 'RUNRELAY_WEBHOOK_RETRY_SCHEDULE' | 'RUNRELAY_WEBHOOK_TIMEOUT_MS'>

/** What a runtime brings: its store, secrets and clock, its guarded fetch and rate budget, and where it is reachable. */
export interface Platform {
  store: Store
  secrets: SecretBox
  clock: Clock
  config: RootConfig
  /** Outbound fetch under the runtime's private-network guard and deadline. */
  fetch: typeof fetch
  /** Per-connection request budget (in memory per isolate, or shared through the database). */
  budget: RequestBudget
  /** The public base URL, read when it is needed (a local server learns its port late; a Worker its origin at the first request). */
  publicUrl: () => string
  /** DNS for the outbound check (absent on Workers, which have no DNS API: only the literal URL is checked). */
  resolveHost?: ResolveHost
  /** The transport under the guard, for what the guard wraps again (webhooks): Node's pins the checked addresses. Absent: the global fetch. */
  transport?: typeof fetch
  /** Upstream requests are counted and traced when these are given. */
  metrics?: Metrics
  tracer?: Tracer
}

/** The connector binder of a runtime (one per platform: its credential and duration caches live in it). */
export function composeBinder(p: Platform): Binder {
  return createBinder({
    store: p.store, secrets: p.secrets, fetch: p.fetch, clock: p.clock, budget: p.budget, publicUrl: p.publicUrl,
    maxAnswerBytes: p.config.RUNRELAY_MAX_UPSTREAM_BODY_BYTES, metrics: p.metrics, tracer: p.tracer,
  })
}

/** What the background services need besides the platform. */
export interface ServicePieces {
  /** Where runs live: a schedule creates and cancels its runs through it. */
  hosts: RunHosts
  log?: (msg: string, extra?: Record<string, unknown>) => void
  /** The event tail's position (Node/Deno): webhook ingest skips its reads while it has not moved. */
  latestEventId?: () => number
  /**
   * The fetch webhook deliveries go out through, under the platform's outbound guard, with its
   * own deadline (Workers: one whose timer ends with the answer). Absent: the platform's
   * transport with the guard's timeout (RUNRELAY_WEBHOOK_TIMEOUT_MS).
   */
  webhookFetch?: typeof fetch
}

/** The background services of a runtime: the jobs loop drives both, the app's schedule routes use the same engine. */
export interface Services {
  schedules: ScheduleEngine
  webhooks: WebhookDispatcher
}

/** The schedule engine of a runtime (holds no state of its own: the schedules live in the store). */
export function composeSchedules(p: Pick<Platform, 'store' | 'clock'>, s: Pick<ServicePieces, 'hosts' | 'log'>): ScheduleEngine {
  return new ScheduleEngine({ store: p.store, clock: p.clock, hosts: s.hosts, log: s.log })
}

/** The webhook dispatcher of a runtime: deliveries signed with the platform's secrets, sent under its outbound guard. */
export function composeWebhooks(p: Platform, s: ServicePieces): WebhookDispatcher {
  const { config } = p
  const timeoutMs = config.RUNRELAY_WEBHOOK_TIMEOUT_MS
  const fetch = createGuardedFetch({
    allowPrivate: config.RUNRELAY_ALLOW_PRIVATE_NETWORK, resolve: p.resolveHost,
    ...(s.webhookFetch ? { fetch: s.webhookFetch, timeoutMs: 0 } : { fetch: p.transport, timeoutMs }),
  })
  return new WebhookDispatcher({
    store: p.store, secrets: p.secrets, clock: p.clock, log: s.log, metrics: p.metrics, latestEventId: s.latestEventId, runBody, fetch,
  }, { retryScheduleMs: config.RUNRELAY_WEBHOOK_RETRY_SCHEDULE, timeoutMs })
}

/** A runtime's background services, each built once here (Node/Deno: per process; Workers: per jobs object). */
export function composeServices(p: Platform, s: ServicePieces): Services {
  return { schedules: composeSchedules(p, s), webhooks: composeWebhooks(p, s) }
}

/** The app's config from the platform's: `publicUrl` is read through, never copied, so a late port is seen without mutating anything. */
export function appConfigOf(p: Pick<Platform, 'config' | 'publicUrl'>): AppConfig {
  const { config } = p
  return {
    get publicUrl() { return p.publicUrl() },
    allowPrivateNetwork: config.RUNRELAY_ALLOW_PRIVATE_NETWORK,
    maxBodyBytes: config.RUNRELAY_MAX_BODY_BYTES,
    idempotencyTtlMs: IDEMPOTENCY_TTL_MS,
    version: VERSION,
    rateLimitPerMinute: config.RUNRELAY_RATE_LIMIT_PER_MINUTE,
    corsOrigins: config.RUNRELAY_CORS_ORIGINS,
  }
}

/** The app's outbound-URL check: a refused URL is a 400 naming `body.base_url`. */
export function urlCheckOf(p: Pick<Platform, 'config' | 'resolveHost'>): (url: string) => Promise<void> {
  const allowPrivate = p.config.RUNRELAY_ALLOW_PRIVATE_NETWORK
  return async (url) => {
    try {
      await checkOutboundUrl(url, { allowPrivate, resolve: p.resolveHost })
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err)
      throw new ApiError(400, 'outbound_url_refused', `base_url is refused: ${message}`, [{ path: 'body.base_url', message }])
    }
  }
}

/** The pieces only the app needs: where runs live and streams open, and the runtime's extras. */
export interface AppPieces {
  /** The binder the runtime's watcher uses too (one credential cache); made here when absent. */
  binder?: Binder
  /** The schedule engine the runtime's jobs loop uses too; made here when absent (the Worker's app). */
  schedules?: ScheduleEngine
  hosts: RunHosts
  streams: Streams
  log?: (msg: string, extra?: Record<string, unknown>) => void
  tokens?: TokenVerifier
  keyRateLimiter?: KeyRateLimiter
  /** GET /metrics (Node and Deno). */
  metrics?: MetricsDeps
  /** Where the app counts what it sees (store errors). */
  telemetry?: Metrics
  middleware?: MiddlewareHandler[]
}

/** The runtime's app, with the binder it was built with and its documented routes. */
export function composeApp(p: Platform, pieces: AppPieces): { app: Hono<AuthEnv>; binder: Binder; routeDocs: RouteDocs } {
  const binder = pieces.binder ?? composeBinder(p)
  const schedules = pieces.schedules ?? composeSchedules(p, pieces)
  const routeDocs = new RouteDocs()
  const app = createApp({
    ...pieces,
    store: p.store, secrets: p.secrets, clock: p.clock, binder, schedules,
    config: appConfigOf(p),
    checkUrl: urlCheckOf(p),
    accessLog: p.config.RUNRELAY_LOG === 'debug',
  }, routeDocs)
  return { app, binder, routeDocs }
}
