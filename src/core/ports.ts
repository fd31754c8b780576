import type { Connector, ConnectorContext } from '../connectors/types.ts'
import type { RunPatch, RunRow } from '../db/store.ts'
import type { NewEvent, PollPolicy, RunEvent } from './domain.ts'

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

/** A conditional write of a run lost a race (another writer, or a stale lease): re-read and decide again. */
export class WriteConflictError extends Error {}

/** Fan-out of persisted events to live subscribers. */
export interface Publisher { publish(tenantId: string, events: RunEvent[]): void }

/** The connector of a run with its context (credentials decrypted, guarded fetch) and policy. */
export interface ConnectorBinding {
  connector: Connector
  ctx: ConnectorContext
  policy: PollPolicy
  /** The workflow's choice for a trigger whose outcome is unknown: never resend blindly, or resend (duplicates harmless). */
  triggerRetry?: 'at_most_once' | 'at_least_once'
}

export type BindConnector = (run: RunRow) => Promise<ConnectorBinding>
