import { setNewest } from './bounded-map.ts'
import { CANCEL_NOT_FORWARDED, UpstreamError, type TriggerResult } from './connector.ts'
import { isOutboundUrlError } from './outbound.ts'
import { NOT_SENT } from './rate-budget.ts'
import type { RunRecord } from './run.ts'

/*
 * The watcher's view of a trigger's requests: what was sent (recorded for the evidence of an
 * unknown outcome), what proves nothing was sent, and the run's Idempotency-Key on its POST.
 */

/** A cancel the connector kept from the upstream on purpose (it would stop more than this run). */
export const notForwarded = (err: unknown): boolean => err instanceof UpstreamError && err.code === CANCEL_NOT_FORWARDED

/** Adds the run id as Idempotency-Key to a trigger's POST, so a retried trigger is one run upstream. */
export function withIdempotencyKey(f: typeof fetch, key: string): typeof fetch {
  return (input, init) => {
    const headers = new Headers(init?.headers)
    if ((init?.method ?? 'GET').toUpperCase() === 'POST' && !headers.has('idempotency-key')) headers.set('idempotency-key', key)
    return f(input, { ...init, headers })
  }
}

/** A request a trigger made, and how it ended (for the evidence, and to tell "not sent" from "unknown"). */
export interface TriggerCall { method: string; url: string; status?: number; refused?: boolean }

/** Statuses that say the upstream rejected the request without starting anything: 4xx (incl. 408, 425, 429) and 503. */
export function isRejection(status: number): boolean {
  return (status >= 400 && status < 500) || status === 503
}

/**
 * Errors that prove no request was sent: refused by the outbound guard, DNS (ENOTFOUND,
 * EAI_AGAIN), nothing listening (ECONNREFUSED), no route, a connect timeout (no connection was
 * made). A reset or a timeout after the connection was made (ECONNRESET, UND_ERR_SOCKET,
 * TimeoutError) proves nothing: the request may have arrived, so it stays unknown.
 */
const NOT_SENT_CODES = new Set([NOT_SENT, 'ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ENETUNREACH', 'EHOSTUNREACH', 'EADDRNOTAVAIL', 'ERR_INVALID_URL', 'UND_ERR_CONNECT_TIMEOUT'])
export function notSent(err: unknown): boolean {
  for (let e = err as { code?: unknown; cause?: unknown; message?: unknown } | undefined, i = 0; e && i < 5; e = e.cause as typeof e, i++) {
    if (isOutboundUrlError(e)) return true
    if (typeof e.code === 'string' && NOT_SENT_CODES.has(e.code)) return true
    if (typeof e.message === 'string' && /ECONNREFUSED|ENOTFOUND|EAI_AGAIN|Connection refused/i.test(e.message)) return true
  }
  return false
}

/** Wraps a trigger's fetch to note each request: method, URL without its query (may hold a secret), status or refusal. */
export function recording(f: typeof fetch, calls: TriggerCall[]): typeof fetch {
  return async (input, init) => {
    const raw = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url
    let url = raw
    try { const u = new URL(raw); url = u.origin + u.pathname } catch { /* kept as given */ }
    const call: TriggerCall = { method: (init?.method ?? (input instanceof Request ? input.method : 'GET')).toUpperCase(), url }
    calls.push(call)
    // A request fetch refuses to build (an invalid header value or name, a bad URL or method)
    // throws a TypeError much like a network failure's: built here first, nothing sent yet, so
    // its refusal is certain. A stream body is not rebuilt (it could be read only once).
    if (!(init?.body instanceof ReadableStream)) {
      try { new Request(input instanceof Request ? input.clone() : input, init) } catch (err) { call.refused = true; throw err }
    }
    try {
      const res = await f(input, init)
      call.status = res.status
      return res
    } catch (err) {
      if (notSent(err)) call.refused = true
      throw err
    }
  }
}

/** The request a connector's trigger gets for `run`. */
export function triggerRequest(run: RunRecord) {
  return { runId: run.id, input: run.input, variables: run.variables, runtimeVariables: run.runtimeVariables }
}

/** The message of anything thrown. */
export function errorMessage(err: unknown): string {
  return String((err as Error)?.message ?? err)
}

/**
 * Trigger attempts a process could not store, by run and by the pending mark (`trigger_pending_at`)
 * each wrote: one whose mark's write failed (no request left, though the write may commit later:
 * a timed-out write can land after the next tick has read the run and marked a new attempt, so
 * every such mark is kept, not the last), or one whose answer's write failed (a database restart):
 * its answer, to store then instead of calling the outcome unknown. Another process taking the run
 * knows none of them, and calls it unknown. Forgotten once the run's trigger is settled. Bounded:
 * one forgotten only makes its outcome "unknown" again.
 */
export class LostAttempts {
  private readonly byRun = new Map<string, Map<number, TriggerResult | null>>()
  /** Runs kept at most, and marks per run (a fault that fails mark after mark keeps the newest). */
  constructor(private readonly max = 10_000, private readonly marksPerRun = 16) {}

  /** The attempt marked `pendingAt` sent no request (null), or got `answer`. */
  remember(runId: string, pendingAt: number, answer: TriggerResult | null): void {
    let marks = this.byRun.get(runId)
    if (!marks) setNewest(this.byRun, runId, marks = new Map(), this.max)
    setNewest(marks, pendingAt, answer, this.marksPerRun)
  }

  /** What this process knows of the attempt marked `pendingAt`: its answer, null if it sent nothing, undefined if nothing is known. */
  of(runId: string, pendingAt: number): TriggerResult | null | undefined {
    return this.byRun.get(runId)?.get(pendingAt)
  }

  /** The run's trigger is settled (answer stored, or the run failed or retries afresh). */
  forget(runId: string): void {
    this.byRun.delete(runId)
  }
}
