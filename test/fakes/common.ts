import http from 'node:http'
import type { AddressInfo } from 'node:net'

/**
 * Shared plumbing of the fake upstream servers (test/fakes/<provider>.ts): a node:http server on
 * 127.0.0.1 port 0, request recording, injected failures (any status, body, headers, raw text or a
 * dropped connection), a configurable answer delay, a fixed-window rate limit answering 429 with
 * Retry-After, and Idempotency-Key replay.
 */

export interface FakeRequest {
  method: string
  /** Path without the query string. */
  path: string
  query: URLSearchParams
  headers: http.IncomingHttpHeaders
  /** Parsed JSON (or form) body; the raw text when it does not parse; undefined when empty. */
  body: unknown
  rawBody: string
}

export interface FakeReply {
  status: number
  body?: unknown
  headers?: Record<string, string>
  /** Sent verbatim instead of JSON (e.g. to test malformed answers). */
  raw?: string
}

export interface InjectedFailure {
  status?: number
  body?: unknown
  headers?: Record<string, string>
  raw?: string
  /** Destroy the socket instead of answering. */
  drop?: boolean
  /** Only requests this predicate accepts are failed (default: every request). */
  match?: (req: FakeRequest) => boolean
  /** How many matching requests to fail (default 1). */
  times?: number
  /** Delay before this answer. */
  delayMs?: number
}

export interface FakeCommonOptions {
  /** Delay every answer by this many ms (slow upstream). */
  delayMs?: number
  /** At most `limit` requests per `windowMs`; beyond that 429 with `Retry-After: retryAfterSec`. */
  rateLimit?: { limit: number; windowMs: number; retryAfterSec?: number }
}

export interface FakeServer {
  url: string
  close(): Promise<void>
  /** Every request received, in order (including failed and rate-limited ones). */
  requests: FakeRequest[]
  /** Number of requests matching a method and a path (string = exact, RegExp = test). */
  count(method: string, path: string | RegExp): number
  /** Queue an injected failure; failures are consumed in order. */
  fail(failure: InjectedFailure): void
  setDelay(ms: number): void
  setRateLimit(limit: FakeCommonOptions['rateLimit']): void
  /** Requests answered 429 by the rate limiter. */
  readonly rateLimited: number
}

export type Handler = (req: FakeRequest) => FakeReply | Promise<FakeReply>

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

function parseBody(raw: string, contentType: string | undefined): unknown {
  if (raw.length === 0) return undefined
  if (contentType?.includes('application/x-www-form-urlencoded')) return Object.fromEntries(new URLSearchParams(raw))
  try {
    return JSON.parse(raw)
  } catch {
    return raw
  }
}

export async function startFakeServer(handler: Handler, opts: FakeCommonOptions = {}): Promise<FakeServer> {
  const requests: FakeRequest[] = []
  const failures: InjectedFailure[] = []
  let delayMs = opts.delayMs ?? 0
  let rateLimit = opts.rateLimit
  let windowStart = Date.now()
  let windowCount = 0
  let rateLimited = 0

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      void (async () => {
        const rawBody = Buffer.concat(chunks).toString('utf8')
        const u = new URL(req.url ?? '/', 'http://fake')
        const fr: FakeRequest = {
          method: req.method ?? 'GET',
          path: u.pathname,
          query: u.searchParams,
          headers: req.headers,
          body: parseBody(rawBody, req.headers['content-type']),
          rawBody,
        }
        requests.push(fr)
        let reply: FakeReply | undefined
        let extraDelay = 0
        const idx = failures.findIndex((f) => !f.match || f.match(fr))
        if (idx >= 0) {
          const f = failures[idx]
          f.times = (f.times ?? 1) - 1
          if (f.times <= 0) failures.splice(idx, 1)
          if (f.delayMs) extraDelay = f.delayMs
          if (f.drop) {
            if (extraDelay) await sleep(extraDelay)
            req.socket.destroy()
            return
          }
          reply = { status: f.status ?? 500, body: f.body, headers: f.headers, raw: f.raw }
        }
        if (!reply && rateLimit) {
          const now = Date.now()
          if (now - windowStart >= rateLimit.windowMs) {
            windowStart = now
            windowCount = 0
          }
          windowCount++
          if (windowCount > rateLimit.limit) {
            rateLimited++
            reply = { status: 429, body: { error: 'rate limit exceeded' }, headers: { 'retry-after': String(rateLimit.retryAfterSec ?? 1) } }
          }
        }
        if (!reply) {
          try {
            reply = await handler(fr)
          } catch (err) {
            reply = { status: 500, body: { error: `fake crashed: ${(err as Error).message}` } }
          }
        }
        const wait = delayMs + extraDelay
        if (wait > 0) await sleep(wait)
        if (res.destroyed) return
        const headers: Record<string, string> = { ...reply.headers }
        let text = ''
        if (reply.raw !== undefined) text = reply.raw
        else if (reply.body !== undefined) {
          text = JSON.stringify(reply.body)
          headers['content-type'] ??= 'application/json'
        }
        res.writeHead(reply.status, headers)
        res.end(text)
      })()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    count(method, path) {
      return requests.filter((r) => r.method === method && (typeof path === 'string' ? r.path === path : path.test(r.path))).length
    },
    fail(f) {
      failures.push({ ...f })
    },
    setDelay(ms) {
      delayMs = ms
    },
    setRateLimit(l) {
      rateLimit = l
      windowStart = Date.now()
      windowCount = 0
    },
    get rateLimited() {
      return rateLimited
    },
    close() {
      server.closeAllConnections()
      return new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

/**
 * Idempotency-Key replay: the first answer for a key is stored and replayed for every later request
 * with the same key (no second run is created). Requests without the header always create.
 */
export class IdempotencyStore {
  private readonly seen = new Map<string, FakeReply>()
  replays = 0

  async handle(req: FakeRequest, create: () => FakeReply | Promise<FakeReply>): Promise<FakeReply> {
    const key = req.headers['idempotency-key']
    const k = Array.isArray(key) ? key[0] : key
    if (k) {
      const prior = this.seen.get(k)
      if (prior) {
        this.replays++
        return prior
      }
    }
    const reply = await create()
    // Only successful creations are remembered; a rejected request may be retried with the same key.
    if (k && reply.status >= 200 && reply.status < 300) this.seen.set(k, reply)
    return reply
  }
}

export const header = (req: FakeRequest, name: string): string | undefined => {
  const v = req.headers[name.toLowerCase()]
  return Array.isArray(v) ? v[0] : v
}

export const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

/**
 * A run's status script: `advance()` moves to the next status of `script` (used for step-driven
 * progression: each status read moves the run one step) and stays on the last one.
 */
export function nextInScript(script: string[] | undefined, current: string): string {
  if (!script || script.length === 0) return current
  const i = script.indexOf(current)
  if (i < 0) return script[0]
  return script[Math.min(i + 1, script.length - 1)]
}
