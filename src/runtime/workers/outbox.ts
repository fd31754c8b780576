import { and, asc, eq, gte, lte } from 'drizzle-orm'
import type { RunEvent } from '../../core/domain.ts'
import { toRunEvent, type RunRow, type Store } from '../../db/store.ts'
import { events, runs } from '../../db/schema.ts'

/** An event waiting in a run object's storage until libSQL has it (and gave it its feed id). */
export interface OutboxEvent {
  seq: number
  type: string
  status: string
  data: Record<string, unknown>
  createdAt: number
}

/**
 * Write a run's current row and its pending events to libSQL in one atomic batch, and read
 * back the events with the ids libSQL assigned. Idempotent, so a flush whose answer was lost
 * is simply sent again: events already there are kept (unique run+seq), and the row is only
 * written over an older one (last_seq never goes back).
 */
export async function flushToLibsql(store: Store, run: RunRow, pending: OutboxEvent[]): Promise<RunEvent[]> {
  const db = store.db
  const { id, ...row } = run
  const update = db.update(runs).set(row).where(and(eq(runs.id, id), lte(runs.lastSeq, run.lastSeq)))
  if (pending.length === 0) {
    await update
    return []
  }
  const insert = db.insert(events).values(pending.map((e) => ({
    tenantId: run.tenantId, runId: id, workflowId: run.workflowId, seq: e.seq, type: e.type, status: e.status, data: e.data, createdAt: e.createdAt,
  }))).onConflictDoNothing()
  const first = pending[0]!.seq
  const last = pending[pending.length - 1]!.seq
  const select = db.select().from(events).where(and(eq(events.runId, id), gte(events.seq, first), lte(events.seq, last))).orderBy(asc(events.seq))
  const [, , rows] = await db.batch([update, insert, select])
  if (rows.length !== pending.length) throw new Error(`outbox flush of run ${id}: ${rows.length} of ${pending.length} events read back`)
  return rows.map((r) => toRunEvent(r, run.tags))
}
