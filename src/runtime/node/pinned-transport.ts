import { lookup } from 'node:dns/promises'
import { isIPv6, type LookupFunction } from 'node:net'
import { Agent } from 'undici'
import { isPrivateAddress } from '../../core/addresses.ts'
import { OutboundUrlError, isOutboundUrlError, type ResolveHost } from '../../core/outbound.ts'

/**
 * How long a host name's answer is kept. `getaddrinfo` gives no TTL; 10 s is below the TTL of
 * nearly every public record, and turns a poll's lookup (83 µs of CPU from /etc/hosts, up to
 * 100 ms of wall time through a resolver, on libuv's four threads: ~40 a second) into one per
 * name every 10 s.
 */
export const DNS_ANSWER_MS = 10_000
/** Names kept at most (the hosts of every tenant's connections and webhooks); the oldest go first. */
const MAX_NAMES = 4_096

/** The system resolver, as the guard wants it: every address of the name (A and AAAA). */
export const systemResolve: ResolveHost = async (host) => (await lookup(host, { all: true })).map((a) => a.address)

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

/**
 * Node's outbound transport (IP pinning). The guard (core/outbound.ts) checks a name's addresses
 * before each request; with the platform's fetch the connection then resolved the name again by
 * itself, so a DNS server answering a public address to the check and a private one to the
 * connection (rebinding) got through, and every poll paid a lookup. Here the guard and the
 * sockets share one cached resolver, and each socket's address is checked again as it connects.
 */
export function pinnedTransport(opts: { allowPrivate: boolean; resolve?: ResolveHost; ttlMs?: number }): PinnedTransport {
  const resolveHost = cachedResolver(opts.resolve ?? systemResolve, opts.ttlMs)
  const agent = new Agent({ connect: { lookup: pinnedLookup(resolveHost, opts.allowPrivate) } })
  const send = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    // The guard passes a URL string; a Request is taken apart so that the dispatcher applies to it.
    const [url, options] = input instanceof Request
      ? [input.url, { method: input.method, headers: input.headers, body: input.body, signal: input.signal, redirect: input.redirect, duplex: 'half' as const, ...init }]
      : [input, init]
    try {
      // Node's fetch takes an undici dispatcher beside the standard fields.
      const through: RequestInit & { dispatcher: Agent } = { ...options, dispatcher: agent }
      return await fetch(url, through)
    } catch (err) {
      // A connection refused by pinnedLookup is the guard's refusal (certain: nothing was sent).
      const cause: unknown = err instanceof Error ? err.cause : undefined
      if (isOutboundUrlError(cause)) throw cause
      throw err
    }
  }
  return { resolveHost, fetch: send as typeof fetch, close: () => agent.close() }
}
