import type { Context } from 'hono'
import { HTTPException } from 'hono/http-exception'
import type { ContentfulStatusCode } from 'hono/utils/http-status'
import * as z from 'zod'
import type { UpstreamError } from '../connectors/types.ts'
import { isStoreUnavailable } from '../db/store-errors.ts'
import { ApiError } from '../services/errors.ts'

/** The error body every route answers: `{"error": {"code", "message", "details"}}`. */
export const ErrorBody = z.object({
  error: z.object({ code: z.string(), message: z.string(), details: z.array(z.unknown()), request_id: z.string().optional() }),
}).meta({ id: 'Error' })

/** The error body, for answers made outside a route (runtime entry points, Durable Objects). */
export function errorBody(code: string, message: string, details: unknown[] = []): z.infer<typeof ErrorBody> {
  return { error: { code, message, details } }
}

/** A JSON error answer made outside a route (no Hono context): the body every route answers. */
export function errorJson(status: number, code: string, message: string, headers?: Record<string, string>): Response {
  return Response.json(errorBody(code, message), { status, headers })
}

/** A stream request that is neither a WebSocket upgrade nor SSE (426). */
export const upgradeRequired = () => errorJson(426, 'upgrade_required', 'use a WebSocket, or Accept: text/event-stream')

export { ApiError, conflict } from '../services/errors.ts'

export const notFound = (what = 'resource') => new ApiError(404, 'not_found', `${what} not found`)
/** A row that was looked up, or a 404 naming `what` when there is none. */
export function found<T>(row: T | null | undefined, what: string): T {
  if (row === null || row === undefined) throw notFound(what)
  return row
}
/** An upstream's refusal as a 502 with its code (and its HTTP status in the details). */
export const upstreamApiError = (err: UpstreamError) => new ApiError(502, err.code, `upstream: ${err.message}`, err.status ? [{ upstream_status: err.status }] : [])

/** zod issues as the `details` of a 400. */
export function validationError(error: z.core.$ZodError, where: string): ApiError {
  const details = error.issues.map((i) => ({ path: [where, ...i.path].join('.'), message: i.message, code: i.code }))
  return new ApiError(400, 'validation_failed', `invalid ${where}: ${details[0]?.path} ${details[0]?.message}`, details)
}

export function errorResponse(c: Context, err: ApiError): Response {
  for (const [k, v] of Object.entries(err.headers)) c.header(k, v)
  const requestId = c.get('requestId') as string | undefined
  return c.json({ error: { code: err.code, message: err.message, details: err.details, ...(requestId ? { request_id: requestId } : {}) } }, err.status)
}

/** Maps anything thrown in a route to the JSON error format; unexpected errors are 500s with no internals. */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err
  if (err instanceof HTTPException) {
    const status = err.status as ContentfulStatusCode
    if (status === 413) return new ApiError(413, 'payload_too_large', 'request body is larger than the limit')
    if (status === 400) return new ApiError(400, 'malformed_request', err.message || 'malformed request')
    return new ApiError(status, 'http_error', err.message || 'request failed')
  }
  if (isStoreUnavailable(err)) return storeUnavailable()
  return new ApiError(500, 'internal_error', 'internal error')
}

/** Seconds a client waits before retrying while the database is unreachable. */
export const STORE_RETRY_AFTER_S = 2

/**
 * The database cannot answer now: 503 with Retry-After. A write may have committed all the
 * same; a retry with the same Idempotency-Key returns what it created.
 */
export const storeUnavailable = () => new ApiError(503, 'store_unavailable', 'the database is unreachable or too slow right now; retry later (with the same Idempotency-Key for a trigger)', [], { 'Retry-After': String(STORE_RETRY_AFTER_S) })
