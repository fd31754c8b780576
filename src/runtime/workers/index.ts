import { errorJson } from '../../http/errors.ts'
import { composeApp } from '../compose.ts'
import type { Env } from './env.ts'
import { WorkersRunHosts } from './hosts.ts'
import { JOBS_OBJECT } from './jobs-object.ts'
import { ensureReady, getShared, isolateApp, logger, platformOf, type WorkerApp } from './shared.ts'
import { WorkersStreams } from './streams.ts'

export { FeedObject, FeedRelayObject } from './feed-object.ts'
export { JobsObject } from './jobs-object.ts'
export { RunObject } from './run-object.ts'
export { RunShardObject } from './run-shard-object.ts'
export type { Env } from './env.ts'

/** Runs whose next tick is this late are woken by the cron sweep (their alarm may be lost). */
const SWEEP_GRACE_MS = 5 * 60_000

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
function appFor(env: Env, request: Request): Promise<WorkerApp> {
  return isolateApp(async () => {
    await ensureReady(env)
    const shared = await getShared(env)
    const publicUrl = shared.config.RUNRELAY_PUBLIC_URL ?? new URL(request.url).origin
    const { app } = composeApp(platformOf(shared, () => publicUrl), {
      log: shared.log, tokens: shared.tokens,
      hosts: new WorkersRunHosts(env, () => publicUrl),
      streams: new WorkersStreams(env),
    })
    return { app, publicUrl }
  })
}

export default {
  async fetch(request, env, ctx): Promise<Response> {
    let worker: WorkerApp
    try {
      worker = await appFor(env, request)
    } catch (err) {
      logger(env.RUNRELAY_LOG)('start-up failed', { where: 'worker.fetch', error: String((err as Error)?.stack ?? err) })
      return errorJson(503, 'unavailable', 'runrelay is starting or its database is unavailable', { 'retry-after': '2' })
    }
    const res = await worker.app.fetch(request, env, ctx)
    if (request.method !== 'GET' && res.status < 300 && JOBS_CHANGE.test(new URL(request.url).pathname)) {
      ctx.waitUntil(kickJobs(env, worker.publicUrl).catch((err) => logger(env.RUNRELAY_LOG)('jobs kick failed', { where: 'worker.fetch', error: String(err) })))
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
