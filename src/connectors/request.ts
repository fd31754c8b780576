import { setNewest } from '../core/bounded-map.ts'
import { parseJson } from '../core/json.ts'
import { HTTP_TOKEN, isOutboundUrlError, requestMethod, settleResponse } from '../core/outbound.ts'
import { redactDeep, redactText } from '../core/redact.ts'
import { isDotSegment, isSafeHeaderValue } from '../core/template.ts'
import { DEFAULT_MAX_UPSTREAM_BODY_BYTES, secretValues, UpstreamError, type ConnectorContext } from './types.ts'

/** A call's context whatever its configs are: all the request helpers read of it. */
export type UpstreamContext = ConnectorContext<unknown, unknown>

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
 * with the right transient/final classification and the upstream's body kept. The one way
 * connectors call their upstream: the URL must stay under the connection's base URL
 * (confineUrl), every header value must be sendable, and the answer is read up to
 * `ctx.maxAnswerBytes`; each refusal happens before anything is sent (a certain failure).
 */
export async function requestJson<T = unknown>(ctx: UpstreamContext, url: string, req: UpstreamRequest = {}): Promise<UpstreamResponse<T>> {
  try {
    return await send<T>(ctx, confineUrl(ctx.connection.baseUrl, url), req)
  } catch (err) {
    throw err instanceof UpstreamError ? redactedError(err, secretValues(ctx)) : err
  }
}

/**
 * The error with the connection's secret values (secretValues) and URL credentials removed from its message
 * and the upstream body it keeps: both reach the run's error, its events and the logs.
 */
export function redactedError(err: UpstreamError, secrets: Iterable<string>): UpstreamError {
  const list = [...secrets]
  const message = redactText(err.message, list)
  const body = err.body === undefined ? undefined : redactDeep(err.body, list)
  if (message === err.message && JSON.stringify(body) === JSON.stringify(err.body)) return err
  return new UpstreamError({ message, code: err.code, transient: err.transient, status: err.status, body, notBefore: err.notBefore })
}

async function send<T>(ctx: UpstreamContext, url: string, req: UpstreamRequest): Promise<UpstreamResponse<T>> {
  const headers: Record<string, string> = { accept: 'application/json', ...req.headers }
  for (const [name, value] of Object.entries(headers)) {
    // fetch would refuse these itself, but as a TypeError that looks like a network failure; and
    // a line break in a value is how a header (or a whole request) is smuggled in.
    if (!HTTP_TOKEN.test(name)) throw new UpstreamError({ message: `header name ${JSON.stringify(name.slice(0, 100))} is not a valid HTTP header name; nothing was sent`, code: 'invalid_header', transient: false })
    if (!isSafeHeaderValue(value)) throw new UpstreamError({ message: `the value of header ${name} holds a line break or another character that is not visible ASCII; nothing was sent`, code: 'invalid_header_value', transient: false })
  }
  let body: string | undefined
  if (req.body !== undefined) {
    body = typeof req.body === 'string' ? req.body : JSON.stringify(req.body)
    if (!Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) headers['content-type'] = 'application/json'
  }
  const init: RequestInit = { method: req.method ?? (body === undefined ? 'GET' : 'POST'), headers, body }
  try {
    // What fetch would refuse to build (a body on a GET, a bad method) is refused here, as certainly
    // unsent. The URL (confineUrl) and the headers (above) are checked already.
    requestMethod(init.method, body !== undefined)
  } catch (err) {
    throw new UpstreamError({ message: `the request could not be built (${(err as Error)?.message ?? String(err)}); nothing was sent`, code: 'invalid_request', transient: false })
  }
  let res: Response
  try {
    res = await ctx.fetch(url, init)
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
    text = await readBounded(res, ctx.maxAnswerBytes ?? DEFAULT_MAX_UPSTREAM_BODY_BYTES)
  } finally {
    // The request has settled: its deadline timer goes now, not 15 s later.
    settleResponse(res)
  }
  let parsed: unknown = text
  let malformed = false
  if (text.length > 0) {
    // Depth-checked: a deeply nested answer must not overflow the code that redacts and stores it.
    try { parsed = parseJson(text) } catch { malformed = true }
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

/**
 * An answer's body as text, read while it streams and cut off past `limit` bytes: the reader is
 * cancelled (so is the connection) and nothing past the limit is buffered. A Content-Length
 * over the limit is refused before the body is read at all.
 *
 * Too large is transient: the next poll may find a smaller answer (a status endpoint that
 * briefly dumps a log), and the run's max_transient_errors bounds the retries (each reads at
 * most `limit` bytes) before it fails with the reason. On a trigger, a 2xx answer too large to
 * read leaves the outcome unknown (the job may exist): the watcher handles it as such.
 */
async function readBounded(res: Response, limit: number): Promise<string> {
  const tooLarge = (read: string) => new UpstreamError({
    message: `upstream answer larger than ${limit} bytes (${read}); cut off unread (RUNRELAY_MAX_UPSTREAM_BODY_BYTES)`,
    code: 'upstream_answer_too_large', transient: true, status: res.status,
  })
  const interrupted = (err: unknown) => new UpstreamError({ message: `upstream body interrupted: ${(err as Error)?.message ?? String(err)}`, code: 'upstream_network_error', transient: true, status: res.status })
  const declared = Number(res.headers.get('content-length') ?? NaN)
  if (Number.isFinite(declared) && declared > limit) {
    await res.body?.cancel().catch(() => {})
    throw tooLarge(`Content-Length ${declared}`)
  }
  const coding = res.headers.get('content-encoding')
  if (Number.isFinite(declared) && (coding === null || coding.trim().toLowerCase() === 'identity')) {
    // The declared length bounds the body (no coding to expand it): read whole, without a
    // reader (Node's transport then builds no web stream at all, issue 26).
    try {
      return UTF8.decode(await res.arrayBuffer())
    } catch (err) {
      throw interrupted(err)
    }
  }
  if (!res.body) return ''
  const reader = res.body.getReader()
  const chunks: Uint8Array[] = []
  let total = 0
  for (;;) {
    let step: ReadableStreamReadResult<Uint8Array>
    try {
      step = await reader.read()
    } catch (err) {
      throw interrupted(err)
    }
    if (step.done) break
    total += step.value.byteLength
    if (total > limit) {
      await reader.cancel().catch(() => {})
      throw tooLarge(`more than ${limit} read`)
    }
    chunks.push(step.value)
  }
  if (chunks.length === 1) return UTF8.decode(chunks[0])
  const bytes = new Uint8Array(total)
  let at = 0
  for (const c of chunks) { bytes.set(c, at); at += c.byteLength }
  return UTF8.decode(bytes)
}

/** One decoder for every answer: `decode` without `stream` keeps no state between calls. */
const UTF8 = new TextDecoder()

/**
 * The whole body when it fits `limit` bytes, else a stream of the same bytes (those read so far,
 * then the rest as it comes): a caller that only looks at small answers never buffers a large one.
 */
export async function readPrefix(body: ReadableStream<Uint8Array> | null, limit: number): Promise<{ bytes: Uint8Array<ArrayBuffer>; rest?: undefined } | { rest: ReadableStream<Uint8Array>; bytes?: undefined }> {
  if (!body) return { bytes: new Uint8Array(0) }
  const reader = body.getReader()
  const chunks: Uint8Array[] = []
  let total = 0
  for (;;) {
    const step = await reader.read()
    if (step.done) break
    chunks.push(step.value)
    total += step.value.byteLength
    if (total > limit) {
      const rest = new ReadableStream<Uint8Array>({
        pull: async (c) => {
          const next = chunks.shift()
          if (next) return c.enqueue(next)
          const more = await reader.read()
          if (more.done) c.close()
          else c.enqueue(more.value)
        },
        cancel: (reason) => reader.cancel(reason),
      })
      return { rest }
    }
  }
  const bytes = new Uint8Array(total)
  let at = 0
  for (const c of chunks) { bytes.set(c, at); at += c.byteLength }
  return { bytes }
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

/**
 * `url` as sent, or a final `url_outside_base` error when it would leave the connection's base
 * URL: another scheme, host or port, user info, a path outside the base path, or a `.`/`..`
 * segment (refused before normalisation too: a request never goes "up" a path). Connectors
 * build URLs with joinUrl and fixed or percent-encoded parts; this is the check that holds
 * whatever went wrong in them.
 */
export function confineUrl(baseUrl: string, url: string): string {
  const refuse = (why: string) => new UpstreamError({ message: `the request URL leaves the connection's base URL (${why}); nothing was sent`, code: 'url_outside_base', transient: false })
  let base: ParsedBase
  let target: URL
  try {
    base = parsedBase(baseUrl)
    target = new URL(url)
  } catch {
    throw new UpstreamError({ message: 'the request URL is not a valid URL; nothing was sent', code: 'invalid_url', transient: false })
  }
  const rawPath = /^[a-z][a-z0-9+.-]*:\/\/[^/?#\\]*([^?#]*)/i.exec(url)?.[1] ?? ''
  if (rawPath.split(/[/\\]/).some(isDotSegment)) throw refuse('a . or .. path segment')
  if (target.protocol !== base.protocol || target.host !== base.host) throw refuse(`${target.protocol}//${target.host} is not ${base.protocol}//${base.host}`)
  if (target.username || target.password) throw refuse('user info')
  const { basePath } = base
  if (basePath && target.pathname !== basePath && !target.pathname.startsWith(`${basePath}/`)) throw refuse(`the path is not under ${basePath}`)
  return target.href
}

interface ParsedBase { protocol: string; host: string; basePath: string }
/** Connections' base URLs as parsed (a few per tenant, asked on every request); the oldest parsed dropped first. */
const parsedBases = new Map<string, ParsedBase>()
const MAX_PARSED_BASES = 1_024

function parsedBase(baseUrl: string): ParsedBase {
  let parsed = parsedBases.get(baseUrl)
  if (!parsed) {
    const base = new URL(baseUrl)
    parsed = { protocol: base.protocol, host: base.host, basePath: base.pathname.replace(/\/+$/, '') }
    setNewest(parsedBases, baseUrl, parsed, MAX_PARSED_BASES)
  }
  return parsed
}
