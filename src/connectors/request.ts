import { isOutboundUrlError } from '../core/outbound.ts'
import { redactDeep, redactText } from '../core/redact.ts'
import { UpstreamError, type ConnectorContext } from './types.ts'

const TRANSIENT_STATUSES = new Set([408, 425, 429])

/** Parse a Retry-After header (seconds or HTTP date) into a ms epoch, relative to `now`. */
export function parseRetryAfter(value: string | null, now: number): number | undefined {
  if (!value) return undefined
  const trimmed = value.trim()
  if (/^\d+(\.\d+)?$/.test(trimmed)) return now + Math.ceil(Number(trimmed) * 1000)
  const date = Date.parse(trimmed)
  return Number.isNaN(date) ? undefined : Math.max(now, date)
}

/** Whether an HTTP status is worth retrying (408, 425, 429 and every 5xx). */
export const isTransientStatus = (status: number): boolean => TRANSIENT_STATUSES.has(status) || status >= 500

export interface UpstreamResponse<T = unknown> {
  status: number
  headers: Headers
  body: T
}

export interface UpstreamRequest {
  method?: string
  headers?: Record<string, string>
  /** JSON-serialised unless it is already a string. */
  body?: unknown
  /** Statuses (besides 2xx) the caller handles itself instead of an UpstreamError. */
  accept?: number[]
}

/**
 * Call the upstream and parse its JSON answer, turning every failure into an UpstreamError
 * with the right transient/final classification and the upstream's body kept.
 */
export async function requestJson<T = unknown>(ctx: ConnectorContext, url: string, req: UpstreamRequest = {}): Promise<UpstreamResponse<T>> {
  try {
    return await send<T>(ctx, url, req)
  } catch (err) {
    throw err instanceof UpstreamError ? redactedError(err, Object.values(ctx.connection.credentials)) : err
  }
}

/**
 * The error with the connection's secret values and URL credentials removed from its message
 * and the upstream body it keeps: both reach the run's error, its events and the logs.
 */
export function redactedError(err: UpstreamError, secrets: Iterable<string>): UpstreamError {
  const list = [...secrets]
  const message = redactText(err.message, list)
  const body = err.body === undefined ? undefined : redactDeep(err.body, list)
  if (message === err.message && JSON.stringify(body) === JSON.stringify(err.body)) return err
  return new UpstreamError({ message, code: err.code, transient: err.transient, status: err.status, body, notBefore: err.notBefore })
}

async function send<T>(ctx: ConnectorContext, url: string, req: UpstreamRequest): Promise<UpstreamResponse<T>> {
  const headers: Record<string, string> = { accept: 'application/json', ...req.headers }
  let body: string | undefined
  if (req.body !== undefined) {
    body = typeof req.body === 'string' ? req.body : JSON.stringify(req.body)
    if (!Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) headers['content-type'] = 'application/json'
  }
  let res: Response
  try {
    res = await ctx.fetch(url, { method: req.method ?? (body === undefined ? 'GET' : 'POST'), headers, body })
  } catch (err) {
    if (err instanceof UpstreamError) throw err
    if (isOutboundUrlError(err)) throw new UpstreamError({ message: err.message, code: 'outbound_url_refused', transient: false })
    const name = (err as Error)?.name
    const timeout = name === 'TimeoutError' || name === 'AbortError'
    throw new UpstreamError({
      message: `upstream ${timeout ? 'timed out' : 'unreachable'}: ${(err as Error)?.message ?? String(err)}`,
      code: timeout ? 'upstream_timeout' : 'upstream_network_error',
      transient: true,
    })
  }
  let text: string
  try {
    text = await res.text()
  } catch (err) {
    throw new UpstreamError({ message: `upstream body interrupted: ${(err as Error).message}`, code: 'upstream_network_error', transient: true, status: res.status })
  }
  let parsed: unknown = text
  let malformed = false
  if (text.length > 0) {
    try { parsed = JSON.parse(text) } catch { malformed = true }
  } else parsed = null
  const ok = res.status >= 200 && res.status < 300
  if (!ok && !req.accept?.includes(res.status)) {
    const transient = isTransientStatus(res.status)
    throw new UpstreamError({
      message: `upstream answered ${res.status}${describe(parsed)}`,
      code: res.status === 429 ? 'upstream_rate_limited' : transient ? 'upstream_unavailable' : `upstream_http_${res.status}`,
      transient,
      status: res.status,
      body: parsed,
      notBefore: parseRetryAfter(res.headers.get('retry-after'), ctx.now()),
    })
  }
  if (malformed) {
    // A truncated or garbled answer says nothing about the run: ask again later.
    throw new UpstreamError({ message: 'upstream answered malformed JSON', code: 'upstream_malformed', transient: true, status: res.status, body: text.slice(0, 2_000) })
  }
  return { status: res.status, headers: res.headers, body: parsed as T }
}

function describe(body: unknown): string {
  if (body && typeof body === 'object') {
    const b = body as Record<string, unknown>
    const msg = b.error ?? b.message ?? b.detail
    if (typeof msg === 'string') return `: ${msg}`
    if (msg && typeof msg === 'object' && typeof (msg as Record<string, unknown>).message === 'string') return `: ${(msg as Record<string, unknown>).message}`
  }
  return ''
}

/** Read a dotted path (`data.execution_id`, `items.0.id`) out of a JSON value. */
export function getPath(value: unknown, path: string | undefined): unknown {
  if (!path) return value
  let cur: unknown = value
  for (const part of path.split('.')) {
    if (cur === null || cur === undefined || typeof cur !== 'object') return undefined
    cur = (cur as Record<string, unknown>)[part]
  }
  return cur
}

/** Join a base URL and a path without doubling or dropping the slash. */
export function joinUrl(base: string, path: string): string {
  return base.replace(/\/+$/, '') + '/' + path.replace(/^\/+/, '')
}
