import { RUN_STATUSES, type EventType, type NewEvent, type RunEvent, type RunStatus } from './domain.ts'
import type { RunPatch, RunRecord } from './run.ts'

/** An event as a store keeps it: the wire form's fields, camelCase, `at` as ms epoch. */
export interface StoredEvent {
  id: number
  runId: string
  workflowId: string
  seq: number
  type: EventType
  status: RunStatus
  data: Record<string, unknown>
  createdAt: number
}

/** A new event of a run with its seq and the status in force once it is applied (no feed id yet). */
export type ChangeEvent = Omit<StoredEvent, 'id' | 'runId' | 'workflowId'>

/**
 * One change of a run, computed and not yet written: the run as it will be, the columns the
 * write sets, and its new events numbered after the run's last seq. Every runtime's write path
 * (the local ledger through the store, the Workers run object through its outbox) uses this, so
 * a run's status per event is decided in one place.
 */
export function applyChange<R extends RunRecord>(run: R, patch: RunPatch, events: NewEvent[], now: number, copy: (run: R) => R = (r) => ({ ...r })): { run: R; set: RunPatch & { lastSeq: number; updatedAt: number }; events: ChangeEvent[] } {
  const set = { ...patch, lastSeq: run.lastSeq + events.length, updatedAt: now }
  // Each event carries the status in force once it is applied: a status change moves it.
  let status = run.status
  const rows = events.map((e, i) => {
    if (e.type === 'run.status_changed' && isRunStatus(e.data.to)) status = e.data.to
    return { seq: run.lastSeq + 1 + i, type: e.type, status, data: e.data, createdAt: now }
  })
  // Undefined fields of the patch leave the column as it was (as an SQL update does). `copy`: the
  // store's own copy of its row type (see db/runs.ts copyRunRow), where a spread would do.
  const next: R = copy(run)
  const into = next as Record<string, unknown>
  for (const k of Object.keys(set)) { const v: unknown = set[k as keyof typeof set]; if (v !== undefined) into[k] = v }
  return { run: next, set, events: rows }
}

const STATUSES: ReadonlySet<unknown> = new Set(RUN_STATUSES)
/** Whether `s` names a run status (a status change's `to`). */
function isRunStatus(s: unknown): s is RunStatus { return STATUSES.has(s) }

/** The wire form of a stored event. */
export function toRunEvent(row: StoredEvent, tags: string[]): RunEvent {
  return {
    id: row.id, run_id: row.runId, seq: row.seq, type: row.type, at: new Date(row.createdAt).toISOString(),
    workflow_id: row.workflowId, status: row.status, tags, data: row.data,
  }
}

/** What a feed subscriber asked for: runs, workflows, statuses, any of the tags (empty: all). */
export interface FeedFilter {
  runIds?: string[]
  workflowIds?: string[]
  statuses?: RunStatus[]
  tags?: string[]
}

/** Whether a feed event passes a subscriber's filter (workflow, status, any of the tags). */
export function matchesFeedFilter(event: Pick<RunEvent, 'run_id' | 'workflow_id' | 'status' | 'tags'>, f: FeedFilter): boolean {
  if (f.runIds?.length && !f.runIds.includes(event.run_id)) return false
  if (f.workflowIds?.length && !f.workflowIds.includes(event.workflow_id)) return false
  if (f.statuses?.length && !f.statuses.includes(event.status)) return false
  if (f.tags?.length && !f.tags.some((t) => event.tags.includes(t))) return false
  return true
}
