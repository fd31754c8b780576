import ipaddr from 'ipaddr.js'

/**
 * Which addresses and host names are not on the public internet: the policy the outbound guard
 * (outbound.ts) applies to every URL and every resolved address.
 */

// ---------------------------------------------------------------------------------------------
// IP address parsing (ipaddr.js does the parsing and the prefix arithmetic; the policy is ours)
// ---------------------------------------------------------------------------------------------

/**
 * Parses an IPv4 address the way the WHATWG URL parser (and inet_aton) does: 1 to 4 parts, each
 * decimal, octal (leading 0) or hex (0x); the last part fills the remaining bytes; one trailing
 * dot is allowed. `127.0.0.1`, `2130706433`, `0177.0.0.1`, `0x7f.1`, `127.1` all give 127.0.0.1.
 * Returns the address as an unsigned 32-bit number, or null.
 */
export function parseIPv4(text: string): number | null {
  const v4 = ipv4Of(text)
  return v4 ? v4.toByteArray().reduce((n, b) => n * 256 + b, 0) : null
}

function ipv4Of(text: string): ipaddr.IPv4 | null {
  const s = text.endsWith('.') ? text.slice(0, -1) : text
  if (s === '') return null
  try { return ipaddr.IPv4.parse(s) } catch { return null }
}

// Inside IPv6 text only a strict dotted quad is valid (no octal, hex or short forms).
const DOTTED_QUAD_TAIL = /:(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/

/**
 * Parses IPv6 text (optionally in brackets, optionally with a `%zone`, optionally ending in a
 * dotted IPv4) into 16 bytes, or null.
 */
export function parseIPv6(text: string): Uint8Array | null {
  const v6 = ipv6Of(text)
  return v6 ? Uint8Array.from(v6.toByteArray()) : null
}

function ipv6Of(text: string): ipaddr.IPv6 | null {
  let s = text
  if (s.startsWith('[') && s.endsWith(']')) s = s.slice(1, -1)
  const zone = s.indexOf('%')
  if (zone !== -1) s = s.slice(0, zone)
  if (!s.includes(':')) return null
  if (s.includes('.')) {
    const m = DOTTED_QUAD_TAIL.exec(s)
    if (!m || m.slice(1).some((b) => Number(b) > 255)) return null
    // As two hex groups: ipaddr.js would read a leading zero as octal (the URL parser reads
    // decimal) and turns the deprecated `::a.b.c.d` into `::ffff:a.b.c.d`.
    const [a, b, c, d] = m.slice(1).map(Number) as [number, number, number, number]
    s = `${s.slice(0, m.index + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`
  }
  try { return ipaddr.IPv6.parse(s) } catch { return null }
}

// ---------------------------------------------------------------------------------------------
// Classification
// ---------------------------------------------------------------------------------------------

const cidrs = (list: readonly string[]) => list.map((c) => ipaddr.parseCIDR(c))

/** IPv4 ranges that are not public unicast (RFC 6890 and friends). */
const PRIVATE_V4 = cidrs([
  '0.0.0.0/8', // "this network", 0.0.0.0
  '10.0.0.0/8', // RFC 1918
  '100.64.0.0/10', // CGNAT, RFC 6598
  '127.0.0.0/8', // loopback
  '169.254.0.0/16', // link-local, incl. 169.254.169.254 cloud metadata
  '172.16.0.0/12', // RFC 1918
  '192.0.0.0/24', // IETF protocol assignments (incl. 192.0.0.170/171 NAT64 discovery)
  '192.0.2.0/24', // TEST-NET-1
  '192.88.99.0/24', // 6to4 relay anycast (deprecated)
  '192.168.0.0/16', // RFC 1918
  '198.18.0.0/15', // benchmarking
  '198.51.100.0/24', // TEST-NET-2
  '203.0.113.0/24', // TEST-NET-3
  '224.0.0.0/4', // multicast
  '240.0.0.0/4', // reserved, incl. 255.255.255.255 broadcast
])

/** IPv6 prefixes whose last 32 bits are an IPv4 address: judged by that address. */
const EMBEDDING_V4_LAST = cidrs([
  '::/96', // unspecified (::), loopback (::1), deprecated IPv4-compatible (::127.0.0.1)
  '::ffff:0:0/96', // IPv4-mapped (::ffff:127.0.0.1 == ::ffff:7f00:1)
  '::ffff:0:0:0/96', // IPv4-translated (SIIT, RFC 2765)
  '64:ff9b::/96', // NAT64 well-known prefix
])
/** 6to4: the IPv4 address is in bytes 2..5. */
const SIX_TO_FOUR = ipaddr.parseCIDR('2002::/16')

/** IPv6 ranges refused outright. */
const PRIVATE_V6 = cidrs([
  '64:ff9b:1::/48', // local-use NAT64 (RFC 8215): translates into the local network
  '2001::/32', // Teredo: tunnels to obfuscated IPv4 endpoints
  '100::/64', // discard-only
  '2001:2::/48', // benchmarking
  '2001:db8::/32', // documentation
  '3fff::/20', // documentation (RFC 9637)
  'fc00::/7', // unique local
  'fe80::/10', // link-local
  'fec0::/10', // site-local (deprecated)
  'ff00::/8', // multicast
])

const isPrivateV4 = (addr: ipaddr.IPv4): boolean => PRIVATE_V4.some((range) => addr.match(range))

function isPrivateV6(addr: ipaddr.IPv6): boolean {
  const b = addr.toByteArray()
  if (EMBEDDING_V4_LAST.some((range) => addr.match(range))) return isPrivateV4(new ipaddr.IPv4(b.slice(12, 16)))
  if (addr.match(SIX_TO_FOUR)) return isPrivateV4(new ipaddr.IPv4(b.slice(2, 6)))
  return PRIVATE_V6.some((range) => addr.match(range))
}

/**
 * True when `ip` must not be contacted from a tenant-controlled URL: loopback, unspecified,
 * RFC 1918, CGNAT, link-local (cloud metadata), benchmarking, documentation, multicast, reserved,
 * broadcast; IPv6 loopback/unspecified, ULA, link-local, site-local, multicast, Teredo, and
 * IPv4-mapped/-compatible/-translated, NAT64 and 6to4 addresses whose embedded IPv4 is private.
 *
 * Accepts IPv4 in any inet_aton form (2130706433, 0177.0.0.1, 0x7f.1) and IPv6 text (with or
 * without brackets or zone). Fails closed: text that is not an IP address returns true.
 */
export function isPrivateAddress(ip: string): boolean {
  const text = ip.trim()
  if (text.includes(':')) {
    const v6 = ipv6Of(text)
    return v6 ? isPrivateV6(v6) : true
  }
  const v4 = ipv4Of(text)
  return v4 ? isPrivateV4(v4) : true
}

/** True when `host` (URL hostname, brackets allowed) is an IP literal rather than a name. */
export function isIpLiteral(host: string): boolean {
  return host.includes(':') ? ipv6Of(host) !== null : ipv4Of(host) !== null
}

const BLOCKED_NAMES = new Set(['localhost', 'ip6-localhost', 'ip6-loopback', 'metadata.google.internal'])
const BLOCKED_SUFFIXES = ['localhost', 'local', 'internal', 'localdomain', 'home.arpa']

/** True for host names that point into the local network by convention (trailing dots ignored). */
export function isBlockedHostname(hostname: string): boolean {
  const name = hostname.toLowerCase().replace(/\.+$/, '')
  if (name === '' || BLOCKED_NAMES.has(name)) return true
  if (!name.includes('.')) return true // single-label: resolved through the search path
  return BLOCKED_SUFFIXES.some((s) => name === s || name.endsWith('.' + s))
}

