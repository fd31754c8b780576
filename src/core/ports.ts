import type { Connector, ConnectorContext } from '../connectors/types.ts'
import type { RunPatch, RunRow } from '../db/store.ts'
import type { NewEvent, PollPolicy, RunEvent } from './domain.ts'
import type { DurationModel } from './poll-planner.ts'

/** Time, injected so the watcher is tested with a fake clock. */
export interface Clock { now(): number }
export const systemClock: Clock = { now: () => Date.now() }

/**
 * Where a run's changes go: `commit` persists the patch and the new events (assigning seqs)
 * and only then publishes them. Node/Deno back it with libSQL directly; Workers with the
 * Durable Object's storage as an outbox in front of libSQL.
 */
export interface RunLedger {
  getRun(runId: string): Promise<RunRow | undefined>
  commit(run: RunRow, patch: RunPatch, events: NewEvent[]): Promise<{ run: RunRow; events: RunEvent[] }>
}

/** Fan-out of persisted events to live subscribers. */
export interface Publisher { publish(tenantId: string, events: RunEvent[]): void }

/** The connector of a run with its context (credentials decrypted, guarded fetch) and policy. */
export interface ConnectorBinding {
  connector: Connector
  ctx: ConnectorContext
  policy: PollPolicy
  /** How long this workflow's runs take, once it has enough history (adaptive polling). */
  durations?: DurationModel
}

export type BindConnector = (run: RunRow) => Promise<ConnectorBinding>
