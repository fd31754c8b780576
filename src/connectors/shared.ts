import * as z from 'zod'
import type { RunStatus } from '../core/domain.ts'
import { getPath, joinUrl, requestJson, type UpstreamContext, type UpstreamRequest, type UpstreamResponse } from './request.ts'
import { UpstreamError, type ConnectorContext, type ProxiedCall, type UpstreamWorkflow } from './types.ts'

/**
 * What the vendor connectors (wokelo, pipelinegeneration, wiv, indigenius, interactly) share:
 * the connection options and credentials they have in common, API-key auth, and small helpers
 * for reading upstream answers. Runtime-neutral: no node:*, Deno or Workers imports.
 */

/** The connection options every vendor connector has; each extends it with its own (unknown keys are kept). */
export const VendorConnection = z.object({
  /** `false`: a trigger carries no Idempotency-Key. */
  sendIdempotencyKey: z.boolean().optional(),
}).passthrough()

/** Credentials of a vendor that takes one API key. */
export const ApiKeyCredentials = z.object({ apiKey: z.string().min(1) })

/**
 * A vendor API that authenticates every request with one header holding the connection's
 * `apiKey` credential (after `prefix`, e.g. `Bearer `).
 */
export function apiKeyApi(header: string, prefix = '') {
  const headers = (ctx: UpstreamContext): Record<string, string> => ({ [header]: `${prefix}${ctx.connection.credentials.apiKey ?? ''}` })
  return {
    headers,
    /** The definition's part that follows from the key: its credentials, and the drop-in proxy's auth (the same header). */
    auth: { credentials: ApiKeyCredentials, authHeaders: async (ctx: UpstreamContext) => headers(ctx) },
    /** requestJson to `path` under the connection's base URL, with the auth header (the request's own headers after it). */
    call: <T = unknown>(ctx: UpstreamContext, path: string, req: UpstreamRequest = {}): Promise<UpstreamResponse<T>> =>
      requestJson<T>(ctx, joinUrl(ctx.connection.baseUrl, path), { ...req, headers: { ...headers(ctx), ...req.headers } }),
  }
}

/** Whether a value is a plain JSON object (not null, not an array). */
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
export function idempotencyHeaders(ctx: ConnectorContext<{ sendIdempotencyKey?: boolean }, unknown>, runId: string): Record<string, string> {
  return ctx.connection.config.sendIdempotencyKey === false ? {} : { 'Idempotency-Key': runId }
}

/** A string or number id at `path` (dotted) of an answer, as it is there; undefined for anything else. */
export function idAt(body: unknown, path: string): string | number | undefined {
  const v = getPath(body, path)
  return typeof v === 'string' || typeof v === 'number' ? v : undefined
}

/** The final error for a 2xx answer that lacks what the connector needs (the upstream id): status and body kept. */
export function badAnswer(res: UpstreamResponse, message: string): UpstreamError {
  return finalError('upstream_bad_answer', message, { status: res.status, body: res.body })
}

/** The workflow's upstream id, which the vendor's trigger needs: a final `invalid_input` error (`message`) when it is empty. */
export function upstreamWorkflowId(ctx: ConnectorContext<unknown, unknown>, message: string): string {
  const id = ctx.workflow.upstreamWorkflowId
  if (!id) throw finalError('invalid_input', message)
  return id
}

/** For matchTrigger: the upstream workflow id a proxied call named, or `unknown`. */
export const namedWorkflow = (v: unknown): string => (typeof v === 'string' && v ? v : 'unknown')

/** The first of `paths` (dotted; '' is the answer itself) that holds an array in the answer, else []. */
export function firstArray(body: unknown, paths: string[]): unknown[] {
  for (const p of paths) {
    const v = getPath(body, p)
    if (Array.isArray(v)) return v
  }
  return []
}

/**
 * The workflows of a list answer: each object's id is the first of `idKeys` that is set (as
 * text), its name the first of `nameKeys` that is a string, and the object is kept raw.
 */
export function upstreamWorkflows(list: unknown[], idKeys: string[], nameKeys: string[]): UpstreamWorkflow[] {
  return list.filter(isRecord).map((w) => ({
    id: String(idKeys.reduce<unknown>((v, k) => v ?? w[k], undefined)),
    name: nameKeys.map((k) => w[k]).find((v): v is string => typeof v === 'string'),
    description: typeof w.description === 'string' ? w.description : undefined,
    raw: w,
  }))
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
