import type { CommandName, Observation } from '../connectors/types.ts'
import type { NewEvent } from '../core/domain.ts'
import type { RunRow, Store } from '../db/store.ts'
import type { FeedFilter } from '../core/run-change.ts'
import type { Context } from 'hono'

/**
 * What the HTTP app needs from a runtime: somewhere runs live (timers, commands) and a way to
 * open streams. Node/Deno give in-process ones; Workers give Durable Objects.
 */
export interface RunHosts {
  /** Persist a new run with its run.created event, publish it, and start watching it. */
  create(row: Parameters<Store['runs']['create']>[0], created: NewEvent): Promise<RunRow>
  command(run: RunRow, name: CommandName, payload: unknown, by: string): Promise<RunRow>
  /** An observation the upstream pushed to the run's callback URL. */
  push(run: RunRow, obs: Observation): Promise<void>
}

export interface StreamRequest {
  tenantId: string
  transport: 'ws' | 'sse'
  /** A run stream resumes after a seq; the feed after an event id. */
  after: number
  runId?: string
  filter?: FeedFilter
  /** Subscriber-token streams can refresh their token over the socket. */
  refresh?: (token: string) => Promise<{ expiresAt: number } | null>
  /** A run stream of a run that had finished when it was opened: it ends once its replay is sent. */
  finished?: boolean
  /** When the credential used to open the stream stops being valid (ms epoch). */
  expiresAt?: number
  /**
   * Token streams: whether the token (the last one refreshed) is still in force, i.e. not revoked
   * since the stream opened (its key, its id, or a tenant's revoke-all). A stream that checks it
   * periodically closes with 4001 (as at expiry) when it answers false.
   */
  inForce?: () => Promise<boolean>
}

export interface Streams {
  open(c: Context, req: StreamRequest): Response | Promise<Response>
}
