import { and, asc, count, desc, eq, gt, gte, inArray, isNull, lt, lte, or, sql, type SQL } from 'drizzle-orm'
import type { NewEvent, RunEvent, RunStatus } from '../core/domain.ts'
import type { RunPatch, RunRecord } from '../core/run.ts'
import { applyChange, toRunEvent, type ChangeEvent, type FeedFilter } from '../core/run-change.ts'
import type { Db } from './db.ts'
import { newestFirst, type Page } from './page.ts'
import type { ReadCache, SharedReadCache } from './read-cache.ts'
import { writeBatch, type PreparedWrite, type RunUpdate } from './run-batch.ts'
import { events, runs, workflows } from './schema.ts'
import { SeqConflictError } from './store-errors.ts'

export type RunRow = typeof runs.$inferSelect
export type EventRow = typeof events.$inferSelect
export type { RunPatch }

/** Compiles only while A and B are assignable both ways. */
type SameShape<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false
// The core declares the run it works on (src/core/run.ts); this fails to compile when the table and it drift apart.
const runShapeMatches: SameShape<RunRow, RunRecord> = true
void runShapeMatches

export interface RunFilter {
  workflowIds?: string[]
  status?: RunStatus[]
  tag?: string
  /** A run id, an upstream id or a tag, matched exactly. */
  search?: string
  /** Created at or after / before (ms epoch). */
  createdAfter?: number
  createdBefore?: number
  cursor?: [number, string] | null
  limit: number
}

/** How long a run row or history page read stays cached (see RunStore.rows). */
const RUN_CACHE_MS = 1_000
/** History pages longer than this are not cached. */
const RUN_CACHE_MAX_EVENTS = 100
/** The columns a run insert may leave out, as a read returns them: null, or the schema's default (0). */
const RUN_UNSET = {
  upstreamStatus: null, upstreamId: null, input: null, progress: null, message: null, result: null, error: null, lastRaw: null,
  triggerAttemptedAt: null, triggerPendingAt: null, triggerAttempts: 0, leaseOwner: null, leaseExpiresAt: null, leaseToken: 0,
  nextTickAt: null, deadlineAt: null, scheduledAt: null, scheduleId: null, scheduleFireAt: null, replayOf: null, startedAt: null, finishedAt: null,
} satisfies Partial<RunRow>

/**
 * A copy of a run row, every column named in one object literal. The ledger keeps a row per run
 * in flight and copies it on every change; a spread copy (`{ ...row }`) of an object this wide
 * keeps only 4 of its 36 fields in the object and the rest in a separate property array,
 * ~280 B more per run in flight (issue 26: heap snapshots at 5,000 runs). A column added to the
 * schema and not here is a type error.
 */
export function copyRunRow(r: RunRow): RunRow {
  return {
    id: r.id, tenantId: r.tenantId, workflowId: r.workflowId, status: r.status, upstreamStatus: r.upstreamStatus, upstreamId: r.upstreamId,
    input: r.input, variables: r.variables, runtimeVariables: r.runtimeVariables, tags: r.tags, progress: r.progress, message: r.message,
    result: r.result, error: r.error, lastRaw: r.lastRaw, connectorState: r.connectorState, outputKeys: r.outputKeys, lastSeq: r.lastSeq,
    transientErrors: r.transientErrors, polls: r.polls, triggerAttemptedAt: r.triggerAttemptedAt, triggerPendingAt: r.triggerPendingAt,
    triggerAttempts: r.triggerAttempts, leaseOwner: r.leaseOwner, leaseExpiresAt: r.leaseExpiresAt, leaseToken: r.leaseToken,
    nextTickAt: r.nextTickAt, deadlineAt: r.deadlineAt, scheduledAt: r.scheduledAt, scheduleId: r.scheduleId, scheduleFireAt: r.scheduleFireAt,
    replayOf: r.replayOf, createdAt: r.createdAt, startedAt: r.startedAt, finishedAt: r.finishedAt, updatedAt: r.updatedAt,
  }
}

/** `o` without its undefined fields (an insert leaves those columns unset). */
function definedFields<T extends object>(o: T): T {
  const out: Partial<T> = {}
  for (const k of Object.keys(o) as (keyof T)[]) if (o[k] !== undefined) out[k] = o[k]
  return out as T
}

/** A run as it will read back once inserted (seq 1 taken by its run.created event). */
function fullRunRow(row: typeof runs.$inferInsert): RunRow {
  return copyRunRow({ ...RUN_UNSET, ...definedFields(row), lastSeq: 1 })
}

/** Runs and their events: creation, changes (group-committed, fenced), history, the tenant feed and the cross-process tail. */
export class RunStore {
  /**
   * With the read cache on: run rows read by id and short history pages, for about a second,
   * so N subscribers connecting to one run cost one run read and one history read, not N
   * each. Every write of a run through this store (writeBatch: creates, ticks, commands)
   * drops the run's entries before and after it is written, and a read that overlapped a
   * write does not fill them: an entry never predates a write made here, so a history page
   * from it holds every event published before it was taken (replay-then-live stays exact).
   * Rows deleted by retention may be seen for up to a second.
   */
  private readonly rows: ReadCache<RunRow>
  private readonly history: ReadCache<RunEvent[]>
  private generation = 0
  /** Cached history pages per run, to drop them with the run. */
  private readonly historyKeys = new Map<string, Set<string>>()

  constructor(private readonly db: Db, cache: SharedReadCache) {
    this.rows = cache.localCache(RUN_CACHE_MS, 1_024)
    this.history = cache.localCache(RUN_CACHE_MS, 256)
  }

  private invalidate(runIds: Iterable<string>): void {
    if (!this.rows.enabled) return
    this.generation++
    for (const id of runIds) {
      this.rows.delete(id)
      const keys = this.historyKeys.get(id)
      if (keys) { for (const k of keys) this.history.delete(k); this.historyKeys.delete(id) }
    }
  }

  /** Drop cached rows and history of runs another process has written (their events came through the tail), before they are published here. */
  forget(runIds: Iterable<string>): void { this.invalidate(runIds) }

  // writes -----------------------------------------------------------------
  /** Insert a run together with its run.created event (seq 1), atomically. */
  async create(row: typeof runs.$inferInsert, created: NewEvent): Promise<{ run: RunRow; event: RunEvent }> {
    return one(await this.writeBatch([this.prepareCreate(row, created)]))
  }

  /** The statements of create, for a caller that commits several writes in one batch. */
  prepareCreate(row: typeof runs.$inferInsert, created: NewEvent): PreparedWrite<{ run: RunRow; event: RunEvent }> {
    // The row as it will read back, without reading it back.
    const run = fullRunRow(row)
    const ev = {
      tenantId: row.tenantId, runId: row.id, workflowId: row.workflowId, seq: 1, type: created.type,
      status: row.status, data: created.data, createdAt: row.createdAt,
    }
    return {
      runs: [run], events: [ev],
      finish: (_, [id]) => ({ run, event: toRunEvent({ ...ev, id: id! }, run.tags) }),
    }
  }

  /**
   * Apply a patch to a run and append its new events with the next seqs, in one atomic
   * batch. The update is conditional on the seq the caller read (and the lease's fencing
   * token, if given), so two writers can never both append seq n+1: the loser gets
   * SeqConflictError and nothing is written.
   */
  async applyChange(run: RunRow, patch: RunPatch, newEvents: NewEvent[], now: number, fence?: number): Promise<{ run: RunRow; events: RunEvent[] }> {
    return one(await this.writeBatch([this.prepareChange(run, patch, newEvents, now, fence)]))
  }

  /** The statements of applyChange, for a caller that commits several writes in one batch. */
  prepareChange(run: RunRow, patch: RunPatch, newEvents: NewEvent[], now: number, fence?: number): PreparedWrite<{ run: RunRow; events: RunEvent[] }> {
    const change = applyChange(run, patch, newEvents, now, copyRunRow)
    // The update is conditional on the seq read (and the fence held): if it matches nothing, its
    // events are not inserted and finish fails (or the insert hits the unique (run, seq) index
    // and the batch rolls back).
    // A write marking a trigger attempt is also conditional on the attempts read (see RunUpdate.attempts).
    const update: RunUpdate = { id: run.id, lastSeq: run.lastSeq, set: change.set, fence, attempts: patch.triggerAttempts !== undefined ? run.triggerAttempts : undefined }
    const rows = change.events.map((e) => ({ tenantId: run.tenantId, runId: run.id, workflowId: run.workflowId, ...e }))
    return {
      runId: run.id, update, events: rows,
      finish: (matched, ids) => {
        if (!matched) throw new SeqConflictError(run.id)
        // The row as written, without reading it back.
        return { run: change.run, events: rows.map((r, i) => toRunEvent({ ...r, id: ids[i]! }, change.run.tags)) }
      },
    }
  }

  /** Run several prepared writes as one atomic batch: group commit (see run-batch.ts). */
  writeBatch<T>(writes: PreparedWrite<T>[]): Promise<Array<{ value?: T; error?: unknown }>> {
    // Without the read cache there is nothing to drop: the batch skips collecting the run ids.
    return writeBatch(this.db, writes, this.rows.enabled ? (ids) => this.invalidate(ids) : undefined)
  }

  /**
   * Write a run as a Workers run object holds it, with the events its outbox still holds, in one
   * atomic batch, and read back the events with the ids libSQL assigned. Idempotent, so a flush
   * whose answer was lost is simply sent again: events already there are kept (unique run+seq),
   * and the row is only written over an older one (last_seq never goes back).
   */
  async writeThrough(run: RunRow, pending: ChangeEvent[]): Promise<RunEvent[]> {
    const { id, ...row } = run
    const update = this.db.update(runs).set(row).where(and(eq(runs.id, id), lte(runs.lastSeq, run.lastSeq)))
    if (pending.length === 0) {
      await update
      return []
    }
    const insert = this.db.insert(events).values(pending.map((e) => ({
      tenantId: run.tenantId, runId: id, workflowId: run.workflowId, seq: e.seq, type: e.type, status: e.status, data: e.data, createdAt: e.createdAt,
    }))).onConflictDoNothing()
    const first = pending[0]!.seq
    const last = pending[pending.length - 1]!.seq
    const select = this.db.select().from(events).where(and(eq(events.runId, id), gte(events.seq, first), lte(events.seq, last))).orderBy(asc(events.seq))
    const [, , rows] = await this.db.batch([update, insert, select])
    if (rows.length !== pending.length) throw new Error(`outbox flush of run ${id}: ${rows.length} of ${pending.length} events read back`)
    return rows.map((r) => toRunEvent(r, run.tags))
  }

  // runs -------------------------------------------------------------------
  async get(tenantId: string, id: string): Promise<RunRow | undefined> {
    const hit = this.rows.get(id)
    if (hit) return hit.tenantId === tenantId ? hit : undefined
    const gen = this.generation
    const [r] = await this.db.select().from(runs).where(and(eq(runs.id, id), eq(runs.tenantId, tenantId)))
    if (r && gen === this.generation) this.rows.set(id, r)
    return r
  }

  async getById(id: string): Promise<RunRow | undefined> {
    const [r] = await this.db.select().from(runs).where(eq(runs.id, id))
    return r
  }

  async list(tenantId: string, f: RunFilter): Promise<Page<RunRow>> {
    const conds: (SQL | undefined)[] = [eq(runs.tenantId, tenantId)]
    if (f.workflowIds?.length) conds.push(inArray(runs.workflowId, f.workflowIds))
    if (f.status?.length) conds.push(inArray(runs.status, f.status))
    const hasTag = (tag: string) => sql`exists (select 1 from json_each(${runs.tags}) where json_each.value = ${tag})`
    if (f.tag) conds.push(hasTag(f.tag))
    if (f.search) conds.push(or(eq(runs.id, f.search), eq(runs.upstreamId, f.search), hasTag(f.search)))
    if (f.createdAfter !== undefined) conds.push(gte(runs.createdAt, f.createdAfter))
    if (f.createdBefore !== undefined) conds.push(lt(runs.createdAt, f.createdBefore))
    return newestFirst(this.db, runs, conds, f.cursor ?? null, f.limit)
  }

  /** Runs that are not finished: the ones a host must watch again after a restart. */
  async listUnfinished(limit = 10_000): Promise<RunRow[]> {
    return this.db.select().from(runs).where(isNull(runs.finishedAt)).orderBy(asc(runs.nextTickAt)).limit(limit)
  }

  /** How long a workflow's newest finished runs took (started → finished, ms): what adaptive polling learns from. */
  async workflowDurations(workflowId: string, limit: number): Promise<number[]> {
    const rows = await this.db.select({ started: runs.startedAt, finished: runs.finishedAt }).from(runs)
      .where(and(eq(runs.workflowId, workflowId), inArray(runs.status, ['completed', 'failed'])))
      .orderBy(desc(runs.createdAt)).limit(limit)
    return rows.flatMap((r) => (r.started !== null && r.finished !== null ? [r.finished - r.started] : []))
  }

  /** The newest run of a connection (through its workflows) with this upstream id. */
  async findByUpstreamId(connection: { id: string; tenantId: string }, upstreamId: string): Promise<RunRow | undefined> {
    const [r] = await this.db.select({ run: runs }).from(runs).innerJoin(workflows, eq(workflows.id, runs.workflowId))
      .where(and(eq(runs.tenantId, connection.tenantId), eq(workflows.connectionId, connection.id), eq(runs.upstreamId, upstreamId)))
      .orderBy(desc(runs.createdAt)).limit(1)
    return r?.run
  }

  async countActiveOfWorkflow(workflowId: string): Promise<number> {
    const [r] = await this.db.select({ n: sql<number>`count(*)` }).from(runs).where(and(eq(runs.workflowId, workflowId), isNull(runs.finishedAt)))
    return Number(r?.n ?? 0)
  }

  /** Unfinished runs of one upstream workflow on a connection, whatever runrelay workflow started them (at most `limit`). */
  async activeIdsOfUpstreamWorkflow(connectionId: string, upstreamWorkflowId: string, limit = 20): Promise<string[]> {
    const rows = await this.db.select({ id: runs.id }).from(runs).innerJoin(workflows, eq(runs.workflowId, workflows.id))
      .where(and(eq(workflows.connectionId, connectionId), eq(workflows.upstreamWorkflowId, upstreamWorkflowId), isNull(runs.finishedAt)))
      .orderBy(asc(runs.createdAt), asc(runs.id)).limit(limit)
    return rows.map((r) => r.id)
  }

  /** Unfinished runs per status (the gauge /metrics reports). */
  async countUnfinishedByStatus(): Promise<Array<{ status: RunStatus; n: number }>> {
    return this.db.select({ status: runs.status, n: count() }).from(runs).where(isNull(runs.finishedAt)).groupBy(runs.status)
  }

  // events -----------------------------------------------------------------
  /** A run's events after `afterSeq`, in seq order. */
  async events(runId: string, afterSeq: number, limit: number): Promise<RunEvent[]> {
    if (!this.history.enabled) return this.readEvents(runId, afterSeq, limit)
    const key = `${runId}:${afterSeq}:${limit}`
    const hit = this.history.get(key)
    // Shared by every reader: callers must not change the array or its events.
    if (hit) return hit
    const gen = this.generation
    const page = await this.readEvents(runId, afterSeq, limit)
    if (gen === this.generation && page.length <= RUN_CACHE_MAX_EVENTS) {
      this.history.set(key, page)
      let keys = this.historyKeys.get(runId)
      if (!keys) {
        // Bounded: past 1,024 runs, drop every cached page with the index (never an index without its pages).
        if (this.historyKeys.size >= 1_024) { this.historyKeys.clear(); this.history.clear() }
        this.historyKeys.set(runId, (keys = new Set()))
      }
      keys.add(key)
    }
    return page
  }

  private async readEvents(runId: string, afterSeq: number, limit: number): Promise<RunEvent[]> {
    const rows = await this.db.select({ e: events, tags: runs.tags }).from(events).innerJoin(runs, eq(runs.id, events.runId))
      .where(and(eq(events.runId, runId), gt(events.seq, afterSeq))).orderBy(asc(events.seq)).limit(limit)
    return rows.map((r) => toRunEvent(r.e, r.tags))
  }

  /** A tenant's events after feed position `afterId`, in id order, filtered. */
  async feedEvents(tenantId: string, afterId: number, filter: FeedFilter, limit: number): Promise<RunEvent[]> {
    const conds: (SQL | undefined)[] = [eq(events.tenantId, tenantId), gt(events.id, afterId)]
    if (filter.runIds?.length) conds.push(inArray(events.runId, filter.runIds))
    if (filter.workflowIds?.length) conds.push(inArray(events.workflowId, filter.workflowIds))
    if (filter.statuses?.length) conds.push(inArray(events.status, filter.statuses))
    if (filter.tags?.length) {
      conds.push(sql`exists (select 1 from json_each(${runs.tags}) where json_each.value in (${sql.join(filter.tags.map((t) => sql`${t}`), sql`, `)}))`)
    }
    const rows = await this.db.select({ e: events, tags: runs.tags }).from(events).innerJoin(runs, eq(runs.id, events.runId))
      .where(and(...conds)).orderBy(asc(events.id)).limit(limit)
    return rows.map((r) => toRunEvent(r.e, r.tags))
  }

  /** Every tenant's events after `afterId`, in id order: the cross-process tail (runtime/local/tail.ts) reads the table with it. */
  async eventsAfter(afterId: number, limit: number): Promise<Array<{ tenantId: string; event: RunEvent }>> {
    const rows = await this.tail().after.all({ afterId, limit })
    return rows.map((r) => ({ tenantId: r.e.tenantId, event: toRunEvent(r.e, r.tags) }))
  }

  /** The highest event id of any tenant (0 when there is none): one seek to the end of the id index. */
  async maxEventId(): Promise<number> {
    const [r] = await this.tail().max.all()
    return Number(r?.id ?? 0)
  }

  /** The highest event id of one tenant (0 when there is none). */
  async lastEventId(tenantId: string): Promise<number> {
    const [r] = await this.db.select({ id: sql<number>`max(${events.id})` }).from(events).where(eq(events.tenantId, tenantId))
    return Number(r?.id ?? 0)
  }

  // The event tail reads these every period of every process: built once, since building a
  // drizzle query costs more CPU than running it (measured on Bun and Node: ~300 µs against ~50–150 µs).
  private tailBuilt?: ReturnType<RunStore['buildTail']>
  private tail() { return (this.tailBuilt ??= this.buildTail()) }
  private buildTail() {
    return {
      after: this.db.select({ e: events, tags: runs.tags }).from(events).innerJoin(runs, eq(runs.id, events.runId))
        .where(gt(events.id, sql.placeholder('afterId'))).orderBy(asc(events.id)).limit(sql.placeholder('limit')).prepare(),
      max: this.db.select({ id: sql<number>`max(${events.id})` }).from(events).prepare(),
    }
  }
}

/** The one result of a one-write batch, or its error. */
function one<T>(results: Array<{ value?: T; error?: unknown }>): T {
  const [r] = results
  if (r!.error) throw r!.error
  return r!.value!
}
