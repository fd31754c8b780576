import type { Context } from 'hono'
import type * as ports from '../core/ports.ts'
import type { RunRow, Store } from '../db/store.ts'

// The ports live in the core (src/core/ports.ts); here they are bound to the store's rows and to
// Hono's context, the shapes the app and the runtimes pass.

/** Where runs live, over the store's run rows (Node/Deno: in-process; Workers: Durable Objects). */
export type RunHosts = ports.RunHosts<Parameters<Store['createRun']>[0], RunRow>
/** Opens streams from a Hono request. */
export type Streams = ports.Streams<Context>
export type { StreamRequest } from '../core/ports.ts'
