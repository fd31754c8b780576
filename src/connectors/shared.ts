import type { RunStatus } from '../core/domain.ts'
import { UpstreamError, type ConnectorContext, type ProxiedCall } from './types.ts'

/**
 * Small helpers shared by the vendor connectors (wokelo, pipelinegeneration, wiv, indigenius,
 * interactly). Runtime-neutral: no node:*, Deno or Workers imports.
 */

export const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

/** A final (not retried) error raised by the connector itself, before or instead of calling upstream. */
export function finalError(code: string, message: string, extra: { status?: number; body?: unknown } = {}): UpstreamError {
  return new UpstreamError({ code, message, transient: false, ...extra })
}

/** Copy an UpstreamError with another code/message (and optionally transient flag), keeping status, body and notBefore. */
export function rewrap(err: UpstreamError, patch: { code?: string; message?: string; transient?: boolean; notBefore?: number }): UpstreamError {
  return new UpstreamError({
    code: patch.code ?? err.code,
    message: patch.message ?? err.message,
    transient: patch.transient ?? err.transient,
    status: err.status,
    body: err.body,
    notBefore: patch.notBefore ?? err.notBefore,
  })
}

/** Map an upstream status word (case-insensitive) through a table; unknown words give `undefined`. */
export function mapStatus(word: unknown, table: Record<string, RunStatus>): { status?: RunStatus; upstreamStatus?: string } {
  if (typeof word !== 'string' || word.length === 0) return {}
  const status = table[word] ?? table[word.toLowerCase()]
  return { status, upstreamStatus: word }
}

/** A human message out of an upstream error body (`error`, `message`, `detail`, `reason`, nested `.message`). */
export function messageOf(body: unknown): string | undefined {
  if (typeof body === 'string') return body.length > 0 ? body.slice(0, 2_000) : undefined
  if (!isRecord(body)) return undefined
  for (const key of ['error', 'message', 'detail', 'reason', 'failReason', 'failedReason', 'error_message', 'errorMessage']) {
    const v = body[key]
    if (typeof v === 'string' && v.length > 0) return v
    if (isRecord(v)) {
      const inner = messageOf(v)
      if (inner) return inner
    }
  }
  return undefined
}

/** Headers sent on every trigger: an Idempotency-Key (the run id) unless disabled in the connection config. */
export function idempotencyHeaders(ctx: ConnectorContext, runId: string): Record<string, string> {
  return ctx.connection.config.sendIdempotencyKey === false ? {} : { 'Idempotency-Key': runId }
}

/** For matchTrigger: the match of `path` against a proxied call that was a successful (2xx) POST, else null. */
export function matchOkPost(call: ProxiedCall, path: RegExp): RegExpExecArray | null {
  return call.method === 'POST' && call.status >= 200 && call.status < 300 ? path.exec(call.path) : null
}

/** Fill `{name}` placeholders of a path template with URL-encoded values. */
export function fillPath(template: string, values: Record<string, string>): string {
  return template.replace(/\{(\w+)\}/g, (m, name: string) => (name in values ? encodeURIComponent(values[name]) : m))
}

/** Turn a progress number given either as 0..1 or 0..100 into 0..1. */
export function normaliseProgress(v: unknown): number | undefined {
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v
  if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) return undefined
  const p = n > 1 ? n / 100 : n
  return Math.min(1, p)
}

/** A connection test that lists the upstream's workflows: ok with how many `credential` can see, else why not. */
export async function testByListing(list: () => Promise<unknown[]>, credential: string): Promise<{ ok: boolean; message: string }> {
  try {
    return { ok: true, message: `${credential}; ${(await list()).length} workflow(s) visible` }
  } catch (err) {
    return { ok: false, message: (err as Error).message }
  }
}
