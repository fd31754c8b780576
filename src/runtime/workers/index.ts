import type { Hono } from 'hono'
import { VERSION } from '../../config.ts'
import { createBinder } from '../../services/binder.ts'
import { checkOutboundUrl } from '../../core/outbound.ts'
import { systemClock } from '../../core/ports.ts'
import { RateBudget } from '../../core/rate-budget.ts'
import { createApp } from '../../http/app.ts'
import { ApiError, errorJson } from '../../http/errors.ts'
import type { Env } from './env.ts'
import { WorkersRunHosts } from './hosts.ts'
import { JOBS_OBJECT } from './jobs-object.ts'
import { ensureReady, getShared, logger } from './shared.ts'
import { WorkersStreams } from './streams.ts'

export { FeedObject, FeedRelayObject } from './feed-object.ts'
export { JobsObject } from './jobs-object.ts'
export { RunObject } from './run-object.ts'
export { RunShardObject } from './run-shard-object.ts'
export type { Env } from './env.ts'

/** Runs whose next tick is this late are woken by the cron sweep (their alarm may be lost). */
const SWEEP_GRACE_MS = 5 * 60_000

let app: Promise<Hono<any>> | undefined
/** The public URL the app was built with (the jobs object creates scheduled runs with it). */
let appUrl: string | undefined

/** Changes after which the jobs object should look again (a new schedule, endpoint, …). */
const JOBS_CHANGE = /^\/v1\/(schedules|webhooks|webhook-deliveries)(\/|$)/

/** Ask the jobs object for a pass now (it re-arms its own alarm). */
function kickJobs(env: Env, publicUrl?: string): Promise<void> {
  return env.JOBS.get(env.JOBS.idFromName(JOBS_OBJECT)).kick(publicUrl)
}

/**
 * The HTTP app, built once per isolate after the migrations and the root key. The public URL
 * (for callback URLs) is RUNRELAY_PUBLIC_URL, else the origin of the first request.
 */
function appFor(env: Env, request: Request): Promise<Hono<any>> {
  return (app ??= (async () => {
    await ensureReady(env)
    const { config, store, secrets, fetch, log, tokens } = await getShared(env)
    const publicUrl = config.RUNRELAY_PUBLIC_URL ?? new URL(request.url).origin
    appUrl = publicUrl
    const allowPrivate = config.RUNRELAY_ALLOW_PRIVATE_NETWORK
    const binder = createBinder({ store, secrets, fetch, clock: systemClock, budget: new RateBudget(), publicUrl, maxAnswerBytes: config.RUNRELAY_MAX_UPSTREAM_BODY_BYTES })
    return createApp({
      store, secrets, binder, clock: systemClock, log, tokens,
      hosts: new WorkersRunHosts(env, publicUrl),
      streams: new WorkersStreams(env),
      accessLog: config.RUNRELAY_LOG === 'debug',
      config: { publicUrl, allowPrivateNetwork: allowPrivate, maxBodyBytes: config.RUNRELAY_MAX_BODY_BYTES, idempotencyTtlMs: 24 * 3600_000, version: VERSION, rateLimitPerMinute: config.RUNRELAY_RATE_LIMIT_PER_MINUTE, corsOrigins: config.RUNRELAY_CORS_ORIGINS },
      async checkUrl(url) {
        // Workers have no DNS API: only the literal URL is checked (a public name that resolves
        // to a private address is not caught here; Cloudflare's egress does not reach RFC 1918
        // space anyway, see the report).
        try {
          await checkOutboundUrl(url, { allowPrivate })
        } catch (err) {
          throw new ApiError(400, 'outbound_url_refused', `base_url is refused: ${(err as Error).message}`, [{ path: 'body.base_url', message: (err as Error).message }])
        }
      },
    })
  })().catch((err) => { app = undefined; throw err }))
}

export default {
  async fetch(request, env, ctx): Promise<Response> {
    let hono: Hono<any>
    try {
      hono = await appFor(env, request)
    } catch (err) {
      logger(env.RUNRELAY_LOG)('start-up failed', { where: 'worker.fetch', error: String((err as Error)?.stack ?? err) })
      return errorJson(503, 'unavailable', 'runrelay is starting or its database is unavailable', { 'retry-after': '2' })
    }
    const res = await hono.fetch(request, env, ctx)
    if (request.method !== 'GET' && res.status < 300 && JOBS_CHANGE.test(new URL(request.url).pathname)) {
      ctx.waitUntil(kickJobs(env, appUrl).catch((err) => logger(env.RUNRELAY_LOG)('jobs kick failed', { where: 'worker.fetch', error: String(err) })))
    }
    return res
  },

  /**
   * Cron: kick the jobs object (a safety net for its alarm), and wake unfinished runs whose
   * tick is long overdue (an alarm lost before the run object stored the run).
   */
  async scheduled(_controller, env): Promise<void> {
    const log = logger(env.RUNRELAY_LOG)
    const jobs = kickJobs(env).catch((err) => log('jobs kick failed', { where: 'worker.scheduled', error: String((err as Error)?.stack ?? err) }))
    try {
      await ensureReady(env)
      const { store } = await getShared(env)
      const now = Date.now()
      const late = (await store.runs.listUnfinished(1_000)).filter((r) => (r.nextTickAt ?? r.createdAt) < now - SWEEP_GRACE_MS)
      await Promise.allSettled(late.map((r) => env.RUNS.get(env.RUNS.idFromName(r.id)).wake(r.id)))
      if (late.length) log('woke overdue runs', { where: 'worker.scheduled', runs: late.length })
    } catch (err) {
      log('sweep failed', { where: 'worker.scheduled', error: String((err as Error)?.stack ?? err) })
    }
    await jobs
  },
} satisfies ExportedHandler<Env>
