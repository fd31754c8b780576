import type { Context } from 'hono'
import type * as ports from '../core/ports.ts'

// The ports live in the core (src/core/ports.ts); here they are bound to Hono's context (streams)
// and, through src/services/hosts.ts, to the store's rows (run hosts).

export type { RunHosts } from '../services/hosts.ts'
/** Opens streams from a Hono request. */
export type Streams = ports.Streams<Context>
export type { StreamRequest } from '../core/ports.ts'
