import type { RunStatus } from './domain.ts'

/**
 * A run as the core reads and writes it: the store's shape, declared here so the watcher and
 * its ports depend on nothing above the core. src/db/store.ts checks at compile time that the
 * drizzle row type and this stay assignable both ways (a new column goes in both places).
 */
export interface RunRecord {
  id: string
  tenantId: string
  workflowId: string
  status: RunStatus
  upstreamStatus: string | null
  upstreamId: string | null
  input: unknown
  variables: Record<string, unknown>
  runtimeVariables: Record<string, unknown>
  tags: string[]
  progress: number | null
  message: string | null
  result: unknown
  error: Record<string, unknown> | null
  lastRaw: unknown
  connectorState: Record<string, unknown>
  /** Keys of outputs already emitted as run.output events. */
  outputKeys: string[]
  lastSeq: number
  /** Transient upstream failures in a row (reset by a good answer). */
  transientErrors: number
  polls: number
  /** When the trigger request was first sent (committed before it leaves). */
  triggerAttemptedAt: number | null
  /** Set before a trigger request leaves, cleared with its answer: set on a loaded run means the outcome is unknown. */
  triggerPendingAt: number | null
  triggerAttempts: number
  leaseOwner: string | null
  leaseExpiresAt: number | null
  /** Fencing token of the run's lease. */
  leaseToken: number
  nextTickAt: number | null
  deadlineAt: number | null
  scheduledAt: number | null
  scheduleId: string | null
  scheduleFireAt: number | null
  replayOf: string | null
  createdAt: number
  startedAt: number | null
  finishedAt: number | null
  updatedAt: number
}

/** The columns of a run one change may set (identity, creation and the seq counter are the store's). */
export type RunPatch = Partial<Omit<RunRecord, 'id' | 'tenantId' | 'workflowId' | 'createdAt' | 'lastSeq'>>
