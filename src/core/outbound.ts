/**
 * Outbound URL guard (SSRF protection) for every request runrelay makes on behalf of a tenant.
 *
 * Portable core code: this module imports nothing runtime-specific. DNS resolution is injected
 * through `ResolveHost` by each runtime (Node: `dns.promises.lookup(host, { all: true })`;
 * Deno: `Deno.resolveDns` for A and AAAA; Workers: none, or DNS-over-HTTPS).
 *
 * What is refused when `allowPrivate` is false:
 *  - any scheme other than http: and https:;
 *  - host names `localhost`, `*.localhost`, `*.local`, `*.internal` (incl. metadata.google.internal),
 *    `*.localdomain`, `*.home.arpa`, `ip6-localhost`, `ip6-loopback`, and single-label names
 *    (`http://metadata/`, `http://intranet/`: they depend on the resolver's search path);
 *    a trailing dot (`localhost.`) does not help;
 *  - literal addresses in a non-public range (see `isPrivateAddress`), in every form the WHATWG
 *    URL parser accepts (2130706433, 0177.0.0.1, 0x7f.1, [::ffff:127.0.0.1], full-width digits…);
 *  - host names for which `resolve` returns ANY non-public address, no address, or fails.
 *
 * Always refused, even with `allowPrivate: true`: URLs with credentials (`http://user:pass@host/`).
 * The Fetch standard rejects them anyway (`new Request()` throws a TypeError), they end up in logs,
 * and `https://trusted.example@evil.example/` is a classic confusion trick. Put credentials in
 * headers instead.
 *
 * Limits (by design of a check-then-fetch guard):
 *  - Without `resolve` (Cloudflare Workers has no DNS API) only the literal host is checked: a public
 *    name pointing at 10.0.0.1 passes. On Workers, the platform itself cannot reach private networks
 *    or loopback, which makes up for most of it; pass a DoH resolver for more.
 *  - DNS rebinding (TOCTOU): when `resolve` and the wrapped `fetch` resolve the name separately, a
 *    hostile DNS server with a zero TTL can answer a public address to the check and a private one
 *    to the connection. Node closes it with IP pinning in the transport (runtime/node/pinned-transport.ts:
 *    the sockets use the guard's own answers, checked again as they connect); Deno and Bun do not.
 *  - Proxies: if the runtime sends requests through an HTTP proxy, the proxy resolves the name.
 */

import { isBlockedHostname, isIpLiteral, isPrivateAddress } from './addresses.ts'
import { isCredentialName, redactUrl } from './redact.ts'

/** Resolves a host name to its IP addresses (text form). Injected by the runtime. */
export type ResolveHost = (hostname: string) => Promise<string[]>

export type OutboundRefusalReason =
  | 'invalid_url'
  | 'scheme'
  | 'credentials'
  | 'blocked_hostname'
  | 'private_address'
  | 'resolved_private_address'
  | 'resolve_failed'
  | 'too_many_redirects'
  | 'redirect_not_allowed'

/** Thrown when an outbound URL is refused. `reason` is a stable machine-readable token. */
export class OutboundUrlError extends Error {
  readonly code = 'outbound_url_refused' as const
  readonly reason: OutboundRefusalReason | (string & {})
  /** The refused URL, with any credentials removed. */
  readonly url: string | undefined

  constructor(reason: OutboundRefusalReason | (string & {}), message: string, url?: string) {
    super(message)
    this.name = 'OutboundUrlError'
    this.reason = reason
    this.url = url
  }
}

export function isOutboundUrlError(err: unknown): err is OutboundUrlError {
  return err instanceof OutboundUrlError
}

// ---------------------------------------------------------------------------------------------
// URL check
// ---------------------------------------------------------------------------------------------

export interface CheckOutboundOptions {
  /** When true, every http(s) URL passes (self-hosted setups calling services on the LAN). */
  allowPrivate: boolean
  /** Resolves names to addresses. Without it only the literal host is checked. */
  resolve?: ResolveHost
  /** Aborts a pending resolution. */
  signal?: AbortSignal
}

/** A URL fit for a message: no userinfo, no credential-named query values (see redact.ts). */
const redact = (url: URL): string => redactUrl(url)

function raceSignal<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise
  if (signal.aborted) return Promise.reject(signal.reason)
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason)
    signal.addEventListener('abort', onAbort, { once: true })
    promise.then(
      (v) => { signal.removeEventListener('abort', onAbort); resolve(v) },
      (e) => { signal.removeEventListener('abort', onAbort); reject(e) },
    )
  })
}

/**
 * Parses and checks an outbound URL; returns the parsed URL or throws `OutboundUrlError`.
 * When `resolve` is given and the host is a name, every resolved address must be public.
 */
export async function checkOutboundUrl(url: string | URL, opts: CheckOutboundOptions): Promise<URL> {
  let parsed: URL
  try {
    parsed = new URL(typeof url === 'string' ? url : url.href)
  } catch {
    throw new OutboundUrlError('invalid_url', 'Outbound URL is not a valid absolute URL')
  }
  const shown = redact(parsed)
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new OutboundUrlError('scheme', `Outbound URL scheme ${parsed.protocol} is not allowed (http or https only)`, shown)
  }
  if (parsed.username || parsed.password) {
    throw new OutboundUrlError('credentials', 'Outbound URL must not contain credentials (user:pass@); send them in a header', shown)
  }
  if (opts.allowPrivate) return parsed

  const host = parsed.hostname.replace(/\.+$/, '')
  if (isIpLiteral(host)) {
    if (isPrivateAddress(host)) {
      throw new OutboundUrlError('private_address', `Outbound URL points to a private address (${parsed.hostname})`, shown)
    }
    return parsed
  }
  if (isBlockedHostname(host)) {
    throw new OutboundUrlError('blocked_hostname', `Outbound URL host ${parsed.hostname} is a local name`, shown)
  }
  if (!opts.resolve) return parsed // literal check only; see the module comment

  let addresses: string[]
  try {
    addresses = await raceSignal(opts.resolve(parsed.hostname), opts.signal)
  } catch (err) {
    if (opts.signal?.aborted) throw err
    throw new OutboundUrlError('resolve_failed', `Could not resolve ${parsed.hostname}: ${(err as Error)?.message ?? String(err)}`, shown)
  }
  if (!Array.isArray(addresses) || addresses.length === 0) {
    throw new OutboundUrlError('resolve_failed', `${parsed.hostname} resolved to no address`, shown)
  }
  const bad = addresses.find((a) => typeof a !== 'string' || isPrivateAddress(a))
  if (bad !== undefined) {
    throw new OutboundUrlError('resolved_private_address', `${parsed.hostname} resolves to a private address (${String(bad)})`, shown)
  }
  return parsed
}

// ---------------------------------------------------------------------------------------------
// Guarded fetch
// ---------------------------------------------------------------------------------------------

export interface GuardedFetchOptions {
  allowPrivate: boolean
  resolve?: ResolveHost
  /** The fetch to wrap (default: globalThis.fetch). Called with `redirect: 'manual'`. */
  fetch?: typeof fetch
  /** Deadline of one call, all hops and the response body included. Default 15 000; 0 or Infinity: none. */
  timeoutMs?: number
  /** Redirects followed before refusing with `too_many_redirects`. Default 5. */
  maxRedirects?: number
}

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308])
/** Methods the Fetch standard upper-cases; the others are sent as written. */
const NORMALISED_METHODS = new Set(['DELETE', 'GET', 'HEAD', 'OPTIONS', 'POST', 'PUT'])
const FORBIDDEN_METHODS = new Set(['CONNECT', 'TRACE', 'TRACK'])
/** RFC 9110 token: what a method or a header name may be made of. */
export const HTTP_TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/

/**
 * A request's method as `new Request()` makes it (DELETE, GET, HEAD, OPTIONS, POST and PUT
 * upper-cased, any other token as written), or the TypeError it throws: not a token, CONNECT,
 * TRACE or TRACK, or a body on GET or HEAD. Lets a caller refuse a request as certainly unsent
 * without building one.
 */
export function requestMethod(method: string | undefined, hasBody: boolean): string {
  const given = method ?? 'GET'
  if (!HTTP_TOKEN.test(given)) throw new TypeError(`'${given}' is not a valid HTTP method`)
  const upper = given.toUpperCase()
  if (FORBIDDEN_METHODS.has(upper)) throw new TypeError(`'${given}' HTTP method is unsupported`)
  const normalised = NORMALISED_METHODS.has(upper) ? upper : given
  if (hasBody && (normalised === 'GET' || normalised === 'HEAD')) throw new TypeError('Request with GET/HEAD method cannot have body')
  return normalised
}

/**
 * Method, headers and body of a request whose body is absent, a string or bytes, as
 * `new Request(url, init)` would make them (the same TypeErrors; a string body without a
 * content-type is text/plain), without building a `Request`: one with its headers, body
 * stream and abort signal was a tenth of what a poll allocated (issue 26). Undefined for any
 * other body (a form, a stream, a blob): those go through a `Request`.
 */
function plainRequest(init: RequestInit | undefined): { method: string; headers: Headers; body: string | Uint8Array<ArrayBuffer> | null } | undefined {
  const given = init?.body
  let body: string | Uint8Array<ArrayBuffer> | null
  if (given === undefined || given === null) body = null
  else if (typeof given === 'string') body = given
  // Copied, as a Request copies: the caller may reuse its buffer while a redirect replays this one.
  else if (given instanceof ArrayBuffer) body = new Uint8Array(given.slice(0))
  else if (ArrayBuffer.isView(given)) {
    body = new Uint8Array(given.byteLength)
    body.set(new Uint8Array(given.buffer, given.byteOffset, given.byteLength))
  }
  else return undefined
  const method = requestMethod(init?.method, body !== null)
  const headers = new Headers(init?.headers)
  if (typeof body === 'string' && !headers.has('content-type')) headers.set('content-type', 'text/plain;charset=UTF-8')
  return { method, headers, body }
}
const BODY_HEADERS = ['content-type', 'content-length', 'content-encoding', 'content-language', 'content-location']
const CROSS_ORIGIN_STRIPPED = ['authorization', 'proxy-authorization', 'cookie']

/** Where `withCredentials` keeps a request's secret values on its init (read by the guarded fetch). */
const CREDENTIALS = Symbol.for('runrelay.outbound.credentials')

/**
 * `init` marked with the secret values its request carries (a connection's credentials), so
 * that the guarded fetch strips every header and query parameter holding one of them on a
 * cross-origin redirect, whatever its name.
 */
export function withCredentials(init: RequestInit | undefined, values: Iterable<string>): RequestInit {
  const list = [...values].filter((v) => typeof v === 'string' && v.length > 0)
  return list.length === 0 ? { ...init } : { ...init, [CREDENTIALS]: list } as RequestInit
}

const credentialsOf = (init: RequestInit | undefined): string[] => ((init as Record<symbol, unknown> | undefined)?.[CREDENTIALS] as string[] | undefined) ?? []

/**
 * What a cross-origin hop must not carry: Authorization, Proxy-Authorization and Cookie (as
 * browsers do), headers named like credentials (X-Api-Key, X-Auth-Token…), and any header or
 * query parameter holding one of the request's known secret values (`withCredentials`).
 */
function stripCredentials(headers: Headers, next: URL, secrets: readonly string[]): void {
  const holdsSecret = (v: string) => secrets.some((s) => v.includes(s) || v.includes(encodeURIComponent(s)))
  for (const h of CROSS_ORIGIN_STRIPPED) headers.delete(h)
  for (const [name, value] of [...headers]) {
    // Idempotency-Key is named like a key but is what lets the other origin dedupe a replayed trigger.
    if ((isCredentialName(name) && name.toLowerCase() !== 'idempotency-key') || holdsSecret(value)) headers.delete(name)
  }
  for (const [name, value] of [...next.searchParams]) if (isCredentialName(name) || holdsSecret(value)) next.searchParams.delete(name)
  if (next.username || next.password) { next.username = ''; next.password = '' }
}

/**
 * A signal that aborts with a `TimeoutError` after `ms`, and the function that cancels its
 * timer. AbortSignal.timeout cannot be cancelled: each request's timer and signal stayed alive
 * for the whole timeout after the request settled (15 s × 1,000 polls/s = 15,000 live timers
 * in the profile, issue 26). Unreferenced, as AbortSignal.timeout's: it never keeps a process up.
 */
function timeoutSignal(ms: number): { signal: AbortSignal; clear: () => void } {
  const ctrl = new AbortController()
  const timer = setTimeout(() => ctrl.abort(new DOMException('The operation timed out.', 'TimeoutError')), ms) as unknown
  ;(timer as { unref?: () => void }).unref?.()
  return { signal: ctrl.signal, clear: () => clearTimeout(timer as ReturnType<typeof setTimeout>) }
}

/** Where the guarded fetch keeps, on a response it returns, the function that ends its deadline. */
const SETTLE = Symbol.for('runrelay.outbound.settle')

/**
 * Tell the guarded fetch that `response` has been read (or given up): its deadline timer is
 * cancelled now instead of when it would have fired. Call it once the body is consumed; a
 * response from another fetch is left alone. Until then the deadline still covers the body.
 */
export function settleResponse(response: Response): void {
  const settle: unknown = Reflect.get(response, SETTLE)
  if (typeof settle === 'function') settle()
}

function anySignal(signals: AbortSignal[]): AbortSignal | undefined {
  if (signals.length <= 1) return signals[0]
  if (typeof AbortSignal.any === 'function') return AbortSignal.any(signals)
  const ctrl = new AbortController()
  for (const s of signals) {
    if (s.aborted) { ctrl.abort(s.reason); break }
    s.addEventListener('abort', () => ctrl.abort(s.reason), { once: true })
  }
  return ctrl.signal
}

/**
 * A `fetch` that checks the URL before each request and follows redirects itself, re-checking
 * every hop (a redirect to a private address throws `OutboundUrlError`). Redirects follow the
 * Fetch standard: 303 (non-GET/HEAD) and 301/302 on POST become GET without body; 307/308 keep
 * method and body. On a cross-origin hop credentials are dropped (see `stripCredentials`):
 * Authorization, Proxy-Authorization, Cookie, credential-named headers and query parameters,
 * and whatever holds a secret value the caller marked with `withCredentials`.
 * The request body is buffered so that it can be replayed on 307/308.
 *
 * `init.redirect: 'manual'` returns the first 3xx as is; `'error'` refuses any redirect.
 * Network errors, timeouts (DOMException `TimeoutError`) and caller aborts reject as with fetch.
 */
export function createGuardedFetch(opts: GuardedFetchOptions): typeof fetch {
  const baseFetch = opts.fetch ?? ((input: RequestInfo | URL, init?: RequestInit) => globalThis.fetch(input, init))
  const timeoutMs = opts.timeoutMs ?? 15_000
  const maxRedirects = opts.maxRedirects ?? 5

  const guarded = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const isRequest = typeof Request !== 'undefined' && input instanceof Request
    const firstUrl = isRequest ? (input as Request).url : input instanceof URL ? input.href : String(input)

    const callerSignal = init?.signal ?? (isRequest ? (input as Request).signal : undefined) ?? undefined
    const signals: AbortSignal[] = []
    if (callerSignal) signals.push(callerSignal)
    const deadline = timeoutMs > 0 && Number.isFinite(timeoutMs) ? timeoutSignal(timeoutMs) : undefined
    if (deadline) signals.push(deadline.signal)
    const signal = anySignal(signals)
    try {
      signal?.throwIfAborted()
      // Taken as fetch takes it, when called: the caller may reuse its buffer once this returns.
      const plain = isRequest ? undefined : plainRequest(init)
      const response = await follow(input, init, isRequest, firstUrl, signal, plain)
      // The deadline covers the body too: it ends when the caller says the response is read (settleResponse).
      if (deadline) {
        try { Object.defineProperty(response, SETTLE, { value: deadline.clear, configurable: true }) } catch { deadline.clear() }
      }
      return response
    } catch (err) {
      deadline?.clear()
      throw err
    }
  }

  const follow = async (input: RequestInfo | URL, init: RequestInit | undefined, isRequest: boolean, firstUrl: string, signal: AbortSignal | undefined, plain: ReturnType<typeof plainRequest>): Promise<Response> => {

    let url = await checkOutboundUrl(firstUrl, { allowPrivate: opts.allowPrivate, resolve: opts.resolve, signal })

    // Normalise method/headers/body as a Request would (after the check: credentials would throw).
    const { signal: _s, redirect: _r, method: _m, headers: _h, body: _b, ...passthrough } = init ?? {}
    let method: string
    let headers: Headers
    let body: ArrayBuffer | Uint8Array<ArrayBuffer> | string | null
    if (plain) ({ method, headers, body } = plain)
    else {
      const first = isRequest ? (init ? new Request(input as Request, init) : (input as Request)) : new Request(url.href, init)
      method = first.method
      headers = new Headers(first.headers)
      body = first.body ? await raceSignal(first.arrayBuffer(), signal) : null
    }
    const redirectMode = init?.redirect ?? (isRequest ? (input as Request).redirect : 'follow')
    const secrets = credentialsOf(init)

    for (let hop = 0; ; hop++) {
      // The URL as checked, not its text: the transport need not parse it again.
      const response = await baseFetch(url, {
        ...passthrough,
        method,
        headers,
        body,
        redirect: 'manual',
        signal,
      })
      const location = response.headers.get('location')
      if (!REDIRECT_STATUSES.has(response.status) || location === null || redirectMode === 'manual') {
        if (hop > 0) {
          try { Object.defineProperty(response, 'redirected', { value: true }) } catch { /* read-only: fine */ }
        }
        return response
      }
      await response.body?.cancel().catch(() => {})
      if (redirectMode === 'error') {
        throw new OutboundUrlError('redirect_not_allowed', `Redirect from ${redact(url)} refused (redirect: 'error')`, redact(url))
      }
      if (hop >= maxRedirects) {
        throw new OutboundUrlError('too_many_redirects', `More than ${maxRedirects} redirects (last: ${redact(url)})`, redact(url))
      }

      let next: URL
      try {
        next = new URL(location, url)
      } catch {
        throw new OutboundUrlError('invalid_url', `Redirect to an invalid Location from ${redact(url)}`, redact(url))
      }
      next = await checkOutboundUrl(next, { allowPrivate: opts.allowPrivate, resolve: opts.resolve, signal })

      const s = response.status
      if ((s === 303 && method !== 'GET' && method !== 'HEAD') || ((s === 301 || s === 302) && method === 'POST')) {
        method = 'GET'
        body = null
        for (const h of BODY_HEADERS) headers.delete(h)
      }
      if (next.origin !== url.origin) stripCredentials(headers, next, secrets)
      url = next
    }
  }
  return guarded as typeof fetch
}
