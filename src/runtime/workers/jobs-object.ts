import { DurableObject } from 'cloudflare:workers'
import { pruneExpired } from '../../db/retention.ts'
import { composeServices, type Services } from '../compose.ts'
import type { Env } from './env.ts'
import { WorkersRunHosts } from './hosts.ts'
import { ensureReady, getShared, logger, platformOf, withDeadline, type Shared } from './shared.ts'

/** The one jobs object's name. */
export const JOBS_OBJECT = 'jobs'
/** Retention runs at most this often (as on Node). */
const RETENTION_EVERY_MS = 3_600_000
/** A failed pass (libSQL down) is retried after this. */
const RETRY_MS = 5_000

/**
 * Background jobs on Workers: schedules (ScheduleEngine.runDueSchedules), webhook deliveries
 * (WebhookDispatcher.runOnce) and hourly retention (pruneExpired), the same portable code the
 * Node/Deno loop (runtime/local/scheduler.ts) drives. One object, named JOBS_OBJECT, with one
 * alarm at the earliest due time:
 *   - the earliest waiting schedule occurrence or due webhook delivery (their `wakeAt`);
 *   - while any webhook endpoint is enabled, RUNRELAY_JOBS_INTERVAL_MS (new events are found by
 *     scanning the events table, nothing tells the dispatcher about them);
 *   - otherwise the next retention pass (hourly).
 * The Worker kicks it after a schedule or webhook endpoint changes, and the cron trigger kicks
 * it too (a safety net for a lost alarm). Every step is claimed in the store, so a pass that
 * overlaps another instance's (a Node server on the same database) is harmless.
 */
export class JobsObject extends DurableObject<Env> {
  private shared?: Shared
  private services?: Services
  private running: Promise<void> | null = null
  private again = false

  /** Run a pass now and re-arm the alarm; `publicUrl` is the Worker's, for the runs schedules create. */
  async kick(publicUrl?: string): Promise<void> {
    await this.entry('kick', async () => {
      if (publicUrl && (await this.ctx.storage.get<string>('publicUrl')) !== publicUrl) {
        await this.ctx.storage.put('publicUrl', publicUrl)
        this.services = undefined
      }
      await this.pass()
    })
  }

  async alarm(): Promise<void> {
    await this.entry('alarm', () => this.pass()).catch(async () => {
      await this.ctx.storage.setAlarm(Date.now() + RETRY_MS).catch(() => {})
    })
  }

  /** One pass at a time; a kick during a pass asks for one more. */
  private pass(): Promise<void> {
    if (this.running) { this.again = true; return this.running }
    this.running = (async () => {
      try {
        do {
          this.again = false
          await this.passOnce()
        } while (this.again)
      } finally {
        this.running = null
      }
    })()
    return this.running
  }

  private async passOnce(): Promise<void> {
    const { shared, services: { schedules, webhooks } } = await this.deps()
    const log = shared.log
    const now = Date.now()
    const due: number[] = []
    let failed = false
    try {
      const r = await schedules.runDueSchedules(now)
      if (r.wakeAt !== null) due.push(r.wakeAt)
      if (r.fired || r.skipped || r.created) log('schedules pass', { where: 'JobsObject.pass', fired: r.fired, skipped: r.skipped, created: r.created })
    } catch (err) {
      failed = true
      log('schedules pass failed', { where: 'JobsObject.pass', error: String((err as Error)?.stack ?? err) })
    }
    try {
      const r = await webhooks.runOnce(now)
      if (r.wakeAt !== null) due.push(r.wakeAt)
      if ((await webhooks.q.enabledEndpoints()).length) due.push(now + shared.config.RUNRELAY_JOBS_INTERVAL_MS)
    } catch (err) {
      failed = true
      log('webhooks pass failed', { where: 'JobsObject.pass', error: String((err as Error)?.stack ?? err) })
    }
    const lastRetention = (await this.ctx.storage.get<number>('lastRetention')) ?? 0
    if (now - lastRetention >= RETENTION_EVERY_MS) {
      await this.ctx.storage.put('lastRetention', now)
      try {
        const pruned = await shared.store.pruneExpired(now)
        if (pruned.runs || pruned.deliveries) log('retention pruned', { where: 'JobsObject.pass', ...pruned })
      } catch (err) {
        log('retention failed', { where: 'JobsObject.pass', error: String((err as Error)?.stack ?? err) })
      }
      due.push(now + RETENTION_EVERY_MS)
    } else {
      due.push(lastRetention + RETENTION_EVERY_MS)
    }
    if (failed) due.push(now + RETRY_MS)
    // Something still due after the pass could not be done now: wait an interval, never spin.
    const at = Math.min(...due)
    await this.ctx.storage.setAlarm(at > Date.now() ? at : Date.now() + Math.max(shared.config.RUNRELAY_JOBS_INTERVAL_MS, 250))
  }

  private async deps(): Promise<{ shared: Shared; services: Services }> {
    await ensureReady(this.env)
    const shared = (this.shared ??= await getShared(this.env))
    const { config, log } = shared
    if (!this.services) {
      const publicUrl = config.RUNRELAY_PUBLIC_URL ?? (await this.ctx.storage.get<string>('publicUrl')) ?? 'http://localhost'
      this.services = composeServices(platformOf(shared, () => publicUrl), {
        hosts: new WorkersRunHosts(this.env, () => publicUrl), log,
        // The deadline timer is cleared once the receiver's answer is read (see withDeadline).
        webhookFetch: withDeadline(config.RUNRELAY_WEBHOOK_TIMEOUT_MS),
      })
    }
    return { shared, services: this.services }
  }

  private async entry<T>(handler: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn()
    } catch (err) {
      const log = this.shared?.log ?? logger(undefined)
      log('handler failed', { where: `JobsObject.${handler}`, error: String((err as Error)?.stack ?? err) })
      throw err
    }
  }
}
