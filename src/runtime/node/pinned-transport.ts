import { isIPv6, type LookupFunction } from 'node:net'
import type { Readable, Transform } from 'node:stream'
import { constants, createBrotliDecompress, createGunzip, createInflate } from 'node:zlib'
import { Agent, type Dispatcher } from 'undici'
import { isPrivateAddress } from '../../core/addresses.ts'
import { OutboundUrlError, isOutboundUrlError, type ResolveHost } from '../../core/outbound.ts'
import { systemResolve } from '../local/system-resolve.ts'
import { UpstreamAnswer } from './answer.ts'

/**
 * How long a host name's answer is kept. `getaddrinfo` gives no TTL; 10 s is below the TTL of
 * nearly every public record, and turns a poll's lookup (83 µs of CPU from /etc/hosts, up to
 * 100 ms of wall time through a resolver, on libuv's four threads: ~40 a second) into one per
 * name every 10 s.
 */
export const DNS_ANSWER_MS = 10_000
/** Names kept at most (the hosts of every tenant's connections and webhooks); the oldest go first. */
const MAX_NAMES = 4_096

/**
 * `resolve` with its answers kept `ttlMs` per name, and one lookup in flight per name shared by
 * every request that needs it. A failed lookup is not kept: the next request asks again.
 */
export function cachedResolver(resolve: ResolveHost, ttlMs = DNS_ANSWER_MS, now: () => number = Date.now): ResolveHost {
  const answers = new Map<string, { at: number; addresses: Promise<string[]> }>()
  return (host) => {
    const name = host.replace(/\.+$/, '').toLowerCase()
    const kept = answers.get(name)
    const at = now()
    if (kept && at - kept.at < ttlMs) return kept.addresses
    const entry = { at, addresses: resolve(name) }
    answers.delete(name)
    answers.set(name, entry)
    if (answers.size > MAX_NAMES) answers.delete(answers.keys().next().value!)
    entry.addresses.catch(() => { if (answers.get(name) === entry) answers.delete(name) })
    return entry.addresses
  }
}

/**
 * The `lookup` of every socket the transport opens: the name's addresses come from `resolve`
 * (the guard's own, cached answer) and, unless private networks are allowed, a connection to
 * a private address is refused here, at connect time, whatever the guard saw before.
 */
function pinnedLookup(resolve: ResolveHost, allowPrivate: boolean): LookupFunction {
  return (hostname, options, callback) => {
    resolve(hostname).then((addresses) => {
      const bad = allowPrivate ? undefined : addresses.find((a) => isPrivateAddress(a))
      if (bad !== undefined) throw new OutboundUrlError('resolved_private_address', `${hostname} resolves to a private address (${bad})`)
      const family = (a: string) => (isIPv6(a) ? 6 : 4)
      const fit = addresses.filter((a) => !options.family || family(a) === options.family).map((a) => ({ address: a, family: family(a) }))
      if (fit.length === 0) throw Object.assign(new Error(`${hostname} has no IPv${options.family} address`), { code: 'ENOTFOUND' })
      return fit
    }).then(
      (fit) => { if (options.all) callback(null, fit); else callback(null, fit[0]!.address, fit[0]!.family) },
      (err: NodeJS.ErrnoException) => callback(err, '', 0),
    )
  }
}

export interface PinnedTransport {
  /** The guard's resolver: the same cached answers the connections use. */
  resolveHost: ResolveHost
  /** The fetch under the guard: connects only to addresses `resolveHost` answered (and checked). */
  fetch: typeof fetch
  close(): Promise<void>
}

/** Statuses whose response has no body (Fetch standard). */
const NULL_BODY_STATUSES = new Set([101, 103, 204, 205, 304])
/** Sent when the caller sets none, as Node's fetch does (it decodes what comes back; so does `decoded`). */
const DEFAULT_HEADERS = { 'accept': '*/*', 'accept-encoding': 'gzip, deflate, br', 'user-agent': 'runrelay' }

/** Content codings decoded in a row at most: more is refused (a decompression chain is work an upstream makes us do), as Node's fetch does. */
const MAX_CODINGS = 5

/**
 * The body decoded per its Content-Encoding, as Node's fetch does: codings listed in the order
 * they were applied, so undone last first; a list with a coding not known here passes as it is.
 */
function decoded(body: Readable, encoding: string | undefined): Readable {
  // Most answers (every poll of a plain JSON API) carry none: nothing to split or allocate.
  if (!encoding) return body
  const codings = encoding.toLowerCase().split(',').map((c) => c.trim())
  if (codings.length > MAX_CODINGS) {
    body.destroy()
    throw new TypeError(`upstream answered with ${codings.length} content codings (at most ${MAX_CODINGS} are decoded)`)
  }
  // Lenient on a truncated end, as Node's fetch is.
  const flush = { flush: constants.Z_SYNC_FLUSH, finishFlush: constants.Z_SYNC_FLUSH }
  if (!codings.every((c) => c === 'gzip' || c === 'x-gzip' || c === 'deflate' || c === 'br')) return body
  const decoders: Transform[] = codings.reverse().map((c) => c === 'deflate' ? createInflate(flush)
    : c === 'br' ? createBrotliDecompress({ flush: constants.BROTLI_OPERATION_FLUSH, finishFlush: constants.BROTLI_OPERATION_FLUSH }) : createGunzip(flush))
  let out = body
  for (const z of decoders) {
    const from = out
    from.on('error', (err) => z.destroy(err))
    z.on('close', () => from.destroy())
    out = from.pipe(z)
  }
  return out
}

/**
 * Node's outbound transport (IP pinning). The guard (core/outbound.ts) checks a name's addresses
 * before each request; with the platform's fetch the connection then resolved the name again by
 * itself, so a DNS server answering a public address to the check and a private one to the
 * connection (rebinding) got through, and every poll paid a lookup. Here the guard and the
 * sockets share one cached resolver, and each socket's address is checked again as it connects.
 *
 * The guard hands it a URL and bytes (or no body) and follows redirects itself, so a request
 * goes out through undici's `request` and its answer comes back as a `Response` (answer.ts): less
 * than half the CPU of Node's `fetch` per request (131 against 294 µs for a poll-sized GET,
 * client and server together), which runs the whole Fetch algorithm again under the guard's.
 * Anything else (a `Request`, a streamed or form body) goes through Node's `fetch` on the same
 * pinned dispatcher.
 */
export function pinnedTransport(opts: { allowPrivate: boolean; resolve?: ResolveHost; ttlMs?: number }): PinnedTransport {
  const resolveHost = cachedResolver(opts.resolve ?? systemResolve, opts.ttlMs)
  const agent = new Agent({ connect: { lookup: pinnedLookup(resolveHost, opts.allowPrivate) } })

  const viaFetch = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    // A Request is taken apart so that the dispatcher applies to it.
    const [url, options] = input instanceof Request
      ? [input.url, { method: input.method, headers: input.headers, body: input.body, signal: input.signal, redirect: input.redirect, duplex: 'half' as const, ...init }]
      : [input, init]
    // Node's fetch takes an undici dispatcher beside the standard fields.
    const through: RequestInit & { dispatcher: Agent } = { ...options, dispatcher: agent }
    return await fetch(url, through)
  }

  const viaRequest = async (url: URL, init: RequestInit | undefined, body: Uint8Array | string | undefined): Promise<Response> => {
    const signal = init?.signal ?? undefined
    const headers: Record<string, string> = { ...DEFAULT_HEADERS }
    // The guard hands a Headers already: copied once into undici's plain record, not twice.
    const given = init?.headers instanceof Headers ? init.headers : new Headers(init?.headers)
    given.forEach((value, name) => { headers[name] = value })
    let answer: Dispatcher.ResponseData
    try {
      answer = await agent.request({ origin: url.origin, path: url.pathname + url.search, method: (init?.method ?? 'GET') as Dispatcher.HttpMethod, headers, body, signal })
    } catch (err) {
      if (signal?.aborted) throw signal.reason
      throw err
    }
    const { statusCode: status, headers: raw, body: stream } = answer
    // Errors reach the reader through the answer's body (answer.ts); this listener keeps a late one (an abort, a reset) from being uncaught.
    stream.on('error', () => {})
    if (status < 200 || status > 599) {
      stream.destroy()
      throw new TypeError(`upstream answered with status ${status}`)
    }
    const out = new Headers()
    for (const [name, value] of Object.entries(raw)) for (const v of Array.isArray(value) ? value : value === undefined ? [] : [value]) out.append(name, v)
    if (NULL_BODY_STATUSES.has(status) || init?.method === 'HEAD') {
      // Nothing to read: drained, so the socket stays in the pool.
      stream.dump().catch(() => {})
      return new UpstreamAnswer(url.href, status, out, null)
    }
    return new UpstreamAnswer(url.href, status, out, decoded(stream, out.get('content-encoding') ?? undefined))
  }

  const send = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const b = init?.body
    const bytes = b === undefined || b === null ? undefined : typeof b === 'string' ? b : b instanceof ArrayBuffer ? new Uint8Array(b) : ArrayBuffer.isView(b) ? new Uint8Array(b.buffer, b.byteOffset, b.byteLength) : null
    try {
      return input instanceof Request || bytes === null ? await viaFetch(input, init) : await viaRequest(input instanceof URL ? input : new URL(input), init, bytes)
    } catch (err) {
      // A connection refused by pinnedLookup is the guard's refusal (certain: nothing was sent), bare or inside fetch's TypeError.
      const cause: unknown = err instanceof Error ? err.cause : undefined
      if (isOutboundUrlError(cause)) throw cause
      const name = (err as Error)?.name
      if (isOutboundUrlError(err) || err instanceof TypeError || name === 'TimeoutError' || name === 'AbortError') throw err
      // As Node's fetch: a network failure is a TypeError whose cause says what failed.
      throw new TypeError('fetch failed', { cause: err })
    }
  }
  // Called once the runtime has stopped: nothing should be in flight, and a hung socket must not hold the exit.
  return { resolveHost, fetch: send as typeof fetch, close: () => agent.destroy() }
}
