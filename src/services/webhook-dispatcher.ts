import { Webhook } from 'standardwebhooks'
import { parseRetryAfter } from '../connectors/request.ts'
import { newId, randomBytes, type SecretBox } from '../core/crypto.ts'
import { isTerminal } from '../core/domain.ts'
import type { Clock, Metrics } from '../core/ports.ts'
import { redactText } from '../core/redact.ts'
import type { EventRow, RunRow, Store } from '../db/store.ts'
import { toRunEvent } from '../core/run-change.ts'
import { WebhookQueries, type WebhookDeliveryRow, type WebhookEndpointRow } from '../db/webhooks.ts'

/**
 * Outbound webhooks, portable (no timers): `runOnce(now)` turns new events into delivery rows
 * and sends the deliveries that are due. Node/Deno call it from an in-process loop; Workers
 * can call it from a DO alarm or a Cron Trigger.
 *
 * Durability: events become deliveries by scanning the events table in id order from a cursor
 * kept in `settings` (webhooks.event_cursor), advanced only after the deliveries of the scanned
 * events are written. A crash in between rescans those events; the unique (endpoint, event)
 * index makes that harmless, so no event is missed or delivered twice by the ingest. Deliveries
 * are rows with `next_attempt_at`; a sender leases one with a conditional update before sending
 * (at-least-once: a crash mid-request retries after the lease; receivers dedupe on webhook-id).
 *
 * Signing follows Standard Webhooks: webhook-id (the delivery id, the same on every attempt),
 * webhook-timestamp, webhook-signature `v1,<base64 HMAC-SHA256 of id.timestamp.body>`; during a
 * secret rotation the previous secret signs too (space-separated signatures).
 */

/** Delay before attempt n+1 (ms): immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h. */
export const DEFAULT_RETRY_SCHEDULE_MS = [0, 5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000]
/** An endpoint failing without a single success for this long is disabled. */
export const DEFAULT_DISABLE_AFTER_MS = 5 * 86_400_000
const CURSOR_KEY = 'webhooks.event_cursor'
const MAX_RETRY_AFTER_MS = 24 * 3_600_000
const RESPONSE_KEPT = 1024

export type WebhookFilter = 'terminal' | 'status' | 'all' | 'types'

export interface WebhookDispatcherDeps {
  store: Store
  secrets: SecretBox
  clock: Clock
  /** The guarded fetch (private networks refused unless allowed), with its timeout. */
  fetch: typeof fetch
  log?: (msg: string, extra?: Record<string, unknown>) => void
  metrics?: Metrics
  /**
   * The highest event id this process knows is committed (Node/Deno: the event tail's position).
   * While it has not moved past what the last ingest scanned, ingest skips its reads (one in
   * FULL_INGEST_EVERY passes scans anyway, for events nobody here has seen).
   */
  latestEventId?: () => number
  /** The run as the API shows it (src/http/serialize.ts runBody), for the payload's `run`: the representation is the API's, handed in. */
  runBody: (run: RunRow) => unknown
}

/** With `latestEventId`, every this-many-th ingest reads the table even when nothing new is known. */
const FULL_INGEST_EVERY = 10

export interface WebhookDispatcherOptions {
  retryScheduleMs?: number[]
  disableAfterMs?: number
  /** Per-request deadline (default 15 s), enforced here on top of the fetch's own. */
  timeoutMs?: number
  /** How long a leased delivery is left alone before another sender may retry it. */
  leaseMs?: number
  concurrency?: number
  batch?: number
}

/** A new signing secret in the Standard Webhooks format. */
export function newWebhookSecret(): string {
  let bin = ''
  for (const b of randomBytes(24)) bin += String.fromCharCode(b)
  return `whsec_${btoa(bin)}`
}

/** Whether an endpoint wants an event. */
export function wants(e: Pick<WebhookEndpointRow, 'tenantId' | 'workflowId' | 'filter' | 'eventTypes' | 'createdAt'>, ev: EventRow): boolean {
  if (e.tenantId !== ev.tenantId) return false
  if (e.workflowId && e.workflowId !== ev.workflowId) return false
  if (ev.createdAt < e.createdAt) return false
  switch (e.filter as WebhookFilter) {
    case 'terminal': return ev.type === 'run.status_changed' && isTerminal(ev.status)
    case 'status': return ev.type === 'run.created' || ev.type === 'run.status_changed'
    case 'all': return true
    case 'types': return e.eventTypes.includes(ev.type)
  }
  return false
}

/** Retry-After as a delay in milliseconds (connectors' parseRetryAfter gives the instant), capped. */
function retryAfterDelay(value: string | null, now: number): number | null {
  const at = parseRetryAfter(value, now)
  return at === undefined ? null : Math.min(at - now, MAX_RETRY_AFTER_MS)
}

export class WebhookDispatcher {
  readonly q: WebhookQueries
  readonly retrySchedule: number[]
  private readonly disableAfterMs: number
  private readonly timeoutMs: number
  private readonly leaseMs: number
  private readonly concurrency: number
  private readonly batch: number
  /** Every event up to this id has been scanned by an ingest here (-1: none yet). */
  private scannedThrough = -1
  private quietIngests = 0

  constructor(private readonly deps: WebhookDispatcherDeps, opts: WebhookDispatcherOptions = {}) {
    this.q = deps.store.webhooks
    this.retrySchedule = opts.retryScheduleMs?.length ? opts.retryScheduleMs : DEFAULT_RETRY_SCHEDULE_MS
    this.disableAfterMs = opts.disableAfterMs ?? DEFAULT_DISABLE_AFTER_MS
    this.timeoutMs = opts.timeoutMs ?? 15_000
    this.leaseMs = opts.leaseMs ?? Math.max(60_000, this.timeoutMs * 2)
    this.concurrency = opts.concurrency ?? 8
    this.batch = opts.batch ?? 500
  }

  /** Ingest new events, then send what is due. Returns when something is next due (null: nothing pending). */
  async runOnce(now = this.deps.clock.now()): Promise<{ ingested: number; sent: number; wakeAt: number | null }> {
    const ingested = await this.ingest(now)
    const sent = await this.deliverDue(now)
    return { ingested, sent, wakeAt: await this.q.earliestDue() }
  }

  /** Turn events after the cursor into delivery rows, then move the cursor past them. */
  async ingest(now = this.deps.clock.now()): Promise<number> {
    const latest = this.deps.latestEventId?.()
    // Nothing committed since the last scan that this process knows of: the cursor cannot have events to read.
    if (latest !== undefined && latest <= this.scannedThrough && ++this.quietIngests < FULL_INGEST_EVERY) return 0
    this.quietIngests = 0
    let cursor = await this.q.cursor(CURSOR_KEY, () => this.q.maxEventId(), now)
    // With no endpoint enabled no event makes a delivery: the cursor moves past them unread (the
    // highest id is read before the endpoints, so an endpoint enabled meanwhile misses none of
    // its events). Reading every event to match none was ~1 read row per poll (issue 26).
    const highest = await this.q.maxEventId()
    if (highest <= cursor) return this.scanned(latest, cursor)
    let endpoints = await this.q.enabledEndpoints()
    if (endpoints.length === 0) {
      await this.q.advanceCursor(CURSOR_KEY, highest, now)
      return this.scanned(latest, highest)
    }
    // The endpoints are matched against events committed before they were read: those up to
    // `current` (an endpoint enabled later misses none of its events); later ones read them again.
    let current = highest
    let created = 0
    for (let round = 0; round < 20; round++) {
      const evs = await this.q.eventsAfter(cursor, this.batch)
      if (evs.length === 0) break
      const last = evs[evs.length - 1]!.id
      if (last > current) { endpoints = await this.q.enabledEndpoints(); current = last }
      const matches = endpoints.length ? evs.flatMap((ev) => endpoints.filter((e) => wants(e, ev)).map((e) => ({ ev, e }))) : []
      if (matches.length) {
        const runs = new Map((await this.q.runsByIds([...new Set(matches.map((m) => m.ev.runId))])).map((r) => [r.id, r]))
        created += await this.q.insertDeliveries(matches.map(({ ev, e }) => ({
          id: newId('msg'), tenantId: ev.tenantId, endpointId: e.id, eventId: ev.id, runId: ev.runId, workflowId: ev.workflowId,
          eventType: ev.type, payload: this.payload(ev, runs.get(ev.runId)), status: 'pending', attempts: 0, cycleAttempts: 0,
          nextAttemptAt: now + this.retrySchedule[0]!, createdAt: now, updatedAt: now,
        })))
      }
      cursor = last
      await this.q.advanceCursor(CURSOR_KEY, cursor, now)
      if (evs.length < this.batch) break
    }
    return this.scanned(latest, cursor, created)
  }

  /** `latest` was read before the scan: an event committed during it is past this and is scanned next time. */
  private scanned(latest: number | undefined, through: number, created = 0): number {
    if (latest !== undefined) this.scannedThrough = Math.min(latest, through)
    return created
  }

  private payload(ev: EventRow, run: RunRow | undefined): string {
    const event = toRunEvent(ev, run?.tags ?? [])
    // Standard Webhooks' recommended envelope; `run` is the run as it is when the delivery is made.
    return JSON.stringify({ type: ev.type, timestamp: event.at, data: { event, ...(run ? { run: this.deps.runBody(run) } : {}) } })
  }

  /** Send every due delivery (leased first, so several senders never send one attempt twice). */
  async deliverDue(now = this.deps.clock.now()): Promise<number> {
    const due = await this.q.dueDeliveries(now, 100)
    let sent = 0
    let i = 0
    const worker = async () => {
      while (i < due.length) {
        const { d, e } = due[i++]!
        if (!(await this.q.claimDelivery(d.id, d.nextAttemptAt!, now + this.leaseMs))) continue
        try {
          await this.attempt(d, e, now)
          sent++
        } catch (err) {
          this.deps.log?.('webhook attempt failed to record', { deliveryId: d.id, error: String((err as Error)?.stack ?? err) })
        }
      }
    }
    await Promise.all(Array.from({ length: Math.min(this.concurrency, due.length) }, worker))
    return sent
  }

  /** Sign the delivery with every valid secret of its endpoint (Standard Webhooks format). */
  async sign(e: WebhookEndpointRow, msgId: string, at: number, body: string): Promise<string> {
    const secrets = [await this.deps.secrets.decrypt<string>(e.secret)]
    if (e.previousSecret && (e.previousSecretExpiresAt ?? 0) > at) secrets.push(await this.deps.secrets.decrypt<string>(e.previousSecret))
    return secrets.map((s) => new Webhook(s).sign(msgId, new Date(at), body)).join(' ')
  }

  private async attempt(d: WebhookDeliveryRow, e: WebhookEndpointRow, now: number): Promise<void> {
    const started = this.deps.clock.now()
    const headers = {
      'content-type': 'application/json', 'user-agent': 'runrelay-webhooks',
      'webhook-id': d.id, 'webhook-timestamp': String(Math.floor(started / 1000)),
      'webhook-signature': await this.sign(e, d.id, started, d.payload),
    }
    let status: number | null = null
    let error: string | null = null
    let responseBody: string | null = null
    let retryAfterMs: number | null = null
    try {
      const res = await this.deps.fetch(e.url, { method: 'POST', headers, body: d.payload, redirect: 'manual', signal: AbortSignal.timeout(this.timeoutMs) })
      status = res.status
      retryAfterMs = retryAfterDelay(res.headers.get('retry-after'), this.deps.clock.now())
      responseBody = (await res.text().catch(() => '')).slice(0, RESPONSE_KEPT)
    } catch (err) {
      const x = err as Error
      // The endpoint's URL may carry a token: the delivery log keeps the message without it.
      error = x?.name === 'TimeoutError' || x?.name === 'AbortError' ? `timed out after ${this.timeoutMs} ms` : redactText(String(x?.message ?? err))
    }
    const done = this.deps.clock.now()
    const ok = status !== null && status >= 200 && status < 300
    const attempts = d.attempts + 1
    const cycle = d.cycleAttempts + 1
    const attempt = { deliveryId: d.id, tenantId: d.tenantId, attempt: attempts, at: started, durationMs: Math.max(0, done - started), statusCode: status, error, responseBody, retryAfterMs }
    this.deps.metrics?.inc('runrelay_webhook_deliveries_total', { outcome: ok ? 'succeeded' : status === 410 ? 'gone' : cycle >= this.retrySchedule.length ? 'failed' : 'retrying' })
    const base = { attempts, cycleAttempts: cycle, lastStatusCode: status, lastError: error ?? (ok ? null : `HTTP ${status}`), updatedAt: done }
    if (ok) {
      await this.q.recordAttempt(attempt, d.id, { ...base, status: 'succeeded', nextAttemptAt: null, completedAt: done })
      if (e.failingSince !== null) await this.q.updateEndpoint(e.id, { failingSince: null })
      return
    }
    if (status === 410) {
      // The receiver says the endpoint is gone for good (Standard Webhooks): stop sending to it.
      await this.q.recordAttempt(attempt, d.id, { ...base, status: 'failed', nextAttemptAt: null, completedAt: done })
      await this.q.disableEndpoint(e.id, 'the receiver answered 410 Gone', done)
      return
    }
    const exhausted = cycle >= this.retrySchedule.length
    const nextAt = exhausted ? null : done + Math.max(this.retrySchedule[cycle]!, retryAfterMs ?? 0)
    await this.q.recordAttempt(attempt, d.id, { ...base, status: exhausted ? 'failed' : 'pending', nextAttemptAt: nextAt, completedAt: exhausted ? done : null })
    const ep = await this.q.markFailing(e.id, now)
    if (ep?.failingSince !== null && ep?.failingSince !== undefined && done - ep.failingSince >= this.disableAfterMs) {
      await this.q.disableEndpoint(e.id, `failing continuously since ${new Date(ep.failingSince).toISOString()}`, done)
    }
  }
}
