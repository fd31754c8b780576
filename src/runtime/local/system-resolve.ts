import { lookup } from 'node:dns/promises'
import type { ResolveHost } from '../../core/outbound.ts'

/**
 * The outbound guard's DNS on Node and Bun: every address of the name (A and AAAA) from the
 * system resolver (`getaddrinfo`, so /etc/hosts too), without its trailing dot. Node keeps the
 * answers and pins its sockets to them (node/pinned-transport.ts); Bun asks on every request.
 */
export const systemResolve: ResolveHost = async (host) => (await lookup(host.replace(/\.+$/, ''), { all: true })).map((a) => a.address)
