import type * as ports from '../core/ports.ts'
import type { RunRow, Store } from '../db/store.ts'

/** Where runs live (the core's port), over the store's run rows: Node/Deno in-process, Workers a Durable Object per run. */
export type RunHosts = ports.RunHosts<Parameters<Store['runs']['create']>[0], RunRow>
