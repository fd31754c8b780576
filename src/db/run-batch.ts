import { getTableColumns } from 'drizzle-orm'
import { setNewest } from '../core/bounded-map.ts'
import type { Db, RawStatement } from './db.ts'
import { rawClient } from './db.ts'
import { events, runs } from './schema.ts'
import { SeqConflictError } from './store-errors.ts'

type RunRow = typeof runs.$inferSelect
export type EventInsert = typeof events.$inferInsert

/** A write as rows and a conditional run update, so several can share one batch. */
export interface PreparedWrite<T> {
  /** The run it appends to, if any (names the loser of a seq race). */
  runId?: string
  /** Run rows to insert (complete rows): a batch inserts those of all its writes in one statement, first. */
  runs?: RunRow[]
  /** A change of an existing run, applied only if its last_seq is still the one read. */
  update?: RunUpdate
  /** Event rows to append: a batch inserts those of all its writes in one statement. */
  events: EventInsert[]
  /** The result, given whether `update` matched its run, and the ids of `events` in the same order. */
  finish(updated: boolean, eventIds: number[]): T
}

/**
 * Set the defined columns of `set` on run `id` if its last_seq is still `lastSeq`. A batch
 * applies the updates of the same columns in one statement (see writeBatch).
 */
export interface RunUpdate {
  id: string
  lastSeq: number
  set: Partial<RunRow>
  /** The lease's fencing token the writer holds: the update applies only while the run still carries it. */
  fence?: number
  /**
   * The trigger_attempts read, for a write that marks a new attempt: it applies only if no other
   * mark landed since. A mark carries no event (the seq does not move), so a mark whose write
   * timed out and landed late would otherwise overwrite a newer attempt's.
   */
  attempts?: number
}

/**
 * The row counts a multi-row statement is written for: a batch of n rows is padded with rows
 * that match nothing up to the next of these (1 to 8, then four steps per doubling: 8, 10, 12,
 * 14, 16, 20, … 448, 512). A statement's SQL text varies with its number of rows, and the local
 * write connection keeps each text prepared: a prepared statement of a few hundred rows holds
 * 100–250 KiB of native memory, so one per group size (1 to 256 writes, times each set of
 * updated columns) could hold ~130 MB at the connection's old cap of 1,024 texts (512 measured:
 * 67 MiB), none of it per run (issue 26: RSS per run). Padding adds less than a seventh more
 * rows, each a lookup that finds nothing (below this machine's noise in CPU per poll).
 */
const SIZE_CLASSES: readonly number[] = (() => {
  const out = [1, 2, 3, 4, 5, 6, 7]
  for (let p = 8; p <= 512; p *= 2) out.push(p, p * 1.25, p * 1.5, p * 1.75)
  return out.filter((c) => c <= 512)
})()

/** The smallest size class that holds `n` rows (n never exceeds the chunk it was cut to). */
function sizeClass(n: number): number {
  for (const c of SIZE_CLASSES) if (c >= n) return c
  return n
}

/** Rows per statement when each row takes `perRow` parameters: the largest size class within `maxParams`. */
function chunkSize(perRow: number, maxParams: number): number {
  let best = 1
  for (const c of SIZE_CLASSES) if (c * perRow <= maxParams) best = c
  return best
}

/** Parameters per multi-row statement (SQLite allows 32,766). */
const MAX_PARAMS = 10_000
/** Event rows per insert statement (8 parameters each). */
const EVENT_INSERT_CHUNK = chunkSize(8, MAX_PARAMS)
const RUN_COLUMNS: Record<string, { name: string; mapToDriverValue(v: unknown): unknown }> = getTableColumns(runs)

/**
 * Run updates as statements: those setting the same columns share one
 * `update … from (values (id, seq read, new values…), …) … returning id`, each row matched by
 * id and by the seq it was read at, so a run whose seq moved is left alone (and not returned).
 * Runs named twice (not from the ledger, which writes a run once per batch) get a statement
 * each, in order.
 */
function runUpdates(updates: RunUpdate[]): RawStatement[] {
  const shapes = new Map<string, { cols: string[]; list: RunUpdate[] }>()
  const seen = new Set<string>()
  let unique = true
  for (const u of updates) {
    if (seen.has(u.id)) unique = false
    seen.add(u.id)
  }
  const valueOf = (u: RunUpdate, k: string): unknown => u.set[k as keyof RunRow]
  updates.forEach((u, i) => {
    const cols = Object.keys(u.set).filter((k) => valueOf(u, k) !== undefined)
    const key = unique ? cols.join(',') : String(i)
    let shape = shapes.get(key)
    if (!shape) shapes.set(key, (shape = { cols, list: [] }))
    shape.list.push(u)
  })
  const out: RawStatement[] = []
  for (const { cols, list } of shapes.values()) {
    const columns = cols.map((k) => RUN_COLUMNS[k]!)
    const assign = columns.map((c, j) => `"${c.name}" = v.column${j + 5}`).join(', ')
    const tuple = `(${Array(cols.length + 4).fill('?').join(', ')})`
    const per = chunkSize(cols.length + 4, MAX_PARAMS)
    for (let i = 0; i < list.length; i += per) {
      const chunk = list.slice(i, i + per)
      const args: unknown[] = []
      for (const u of chunk) {
        args.push(u.id, u.lastSeq, u.fence ?? null, u.attempts ?? null)
        for (let j = 0; j < cols.length; j++) {
          const v = valueOf(u, cols[j]!)
          args.push(v === null ? null : columns[j]!.mapToDriverValue(v))
        }
      }
      // Padding rows: a null id matches no run.
      out.push({
        sql: `update "runs" set ${assign} from (values ${paddedValues(args, chunk.length, cols.length + 4, tuple)}) as v where "runs"."id" = v.column1 and "runs"."last_seq" = v.column2 and (v.column3 is null or "runs"."lease_token" = v.column3) and (v.column4 is null or "runs"."trigger_attempts" = v.column4) returning "runs"."id"`,
        args,
      })
    }
  }
  return out
}

const EVENT_COLUMNS = ['tenantId', 'runId', 'workflowId', 'seq', 'type', 'status', 'data', 'createdAt'] as const
const EVENT_INSERT_HEAD = `insert into "events" (${EVENT_COLUMNS.map((k) => `"${events[k].name}"`).join(', ')}) `
const EVENT_TUPLE = `(${EVENT_COLUMNS.map(() => '?').join(', ')})`

/**
 * A multi-row insert of event rows returning (id, run_id, seq) for each. A row goes in only if
 * its run's last_seq already covers its seq, that is if the run update of the same write
 * matched: a write refused by its condition (seq moved, or a stale lease's fence) appends
 * nothing, even where its seqs are still free.
 */
function eventInsert(rows: EventInsert[]): RawStatement {
  const args: unknown[] = []
  for (const r of rows) args.push(r.tenantId, r.runId, r.workflowId, r.seq, r.type, r.status, JSON.stringify(r.data), r.createdAt)
  // Padding rows: a null run id has no run, so they are never inserted.
  return {
    sql: `${EVENT_INSERT_HEAD}select * from (values ${paddedValues(args, rows.length, EVENT_COLUMNS.length, EVENT_TUPLE)}) as v `
      + `where exists (select 1 from "runs" where "runs"."id" = v.column2 and "runs"."last_seq" >= v.column4) returning "id", "run_id", "seq"`,
    args,
  }
}

const RUN_KEYS = Object.keys(RUN_COLUMNS)
const RUN_INSERT_HEAD = `insert into "runs" (${RUN_KEYS.map((k) => `"${RUN_COLUMNS[k]!.name}"`).join(', ')}) `
const RUN_TUPLE = `(${RUN_KEYS.map(() => '?').join(', ')})`

/**
 * A multi-row insert of complete run rows (runs.ts `fullRunRow`: every column given), each value
 * through its column's driver mapping, as drizzle's builder would write it: that builder cost
 * about a tenth of a trigger's allocations (issue 26).
 */
function runInsert(rows: RunRow[]): RawStatement {
  const args: unknown[] = []
  for (const r of rows) {
    for (const k of RUN_KEYS) {
      const v: unknown = r[k as keyof RunRow]
      args.push(v === null || v === undefined ? null : RUN_COLUMNS[k]!.mapToDriverValue(v))
    }
  }
  // Padding rows: a null id is filtered out before the insert.
  return { sql: `${RUN_INSERT_HEAD}select * from (values ${paddedValues(args, rows.length, RUN_KEYS.length, RUN_TUPLE)}) as v where v.column1 is not null`, args }
}

/** Rows per run insert statement (one parameter per column; ~100 rows, as before: creates come a group at a time). */
const RUN_INSERT_CHUNK = chunkSize(RUN_KEYS.length, MAX_PARAMS / 3)

/** VALUES lists by tuple and row count: one string per size class, not one join per statement. */
const valuesLists = new Map<string, string>()

/**
 * The VALUES list of a statement over `count` rows of `width` parameters (`args` holds theirs),
 * written for its size class: `args` is padded with rows of nulls, which each statement's
 * condition keeps from matching or inserting anything.
 */
function paddedValues(args: unknown[], count: number, width: number, tuple: string): string {
  const n = sizeClass(count)
  for (let i = (n - count) * width; i > 0; i--) args.push(null)
  const key = `${n}${tuple}`
  let list = valuesLists.get(key)
  if (list === undefined) setNewest(valuesLists, key, (list = Array(n).fill(tuple).join(', ')), 1_024)
  return list
}

/**
 * Run several prepared writes as one atomic batch (one transaction, one commit): group
 * commit. New runs go first (one multi-row insert), then the run updates (one statement
 * per set of changed columns), then all the events in one multi-row insert, so event ids
 * follow the order of the writes. Each write's result or error is its own, except that a
 * failing statement rolls back the whole batch and rejects. `invalidate` drops cached copies
 * of the runs written, before and after.
 */
export async function writeBatch<T>(db: Db, writes: PreparedWrite<T>[], invalidate?: (runIds: string[]) => void): Promise<Array<{ value?: T; error?: unknown }>> {
  // Statements go to the libSQL client as they are (sql + args): drizzle's builders cost
  // more than the writes here, and a batch's statements need no result mapping.
  const stmts: RawStatement[] = []
  // New runs first, all in one multi-row insert (a write's statements only touch its own run).
  const runRows = writes.flatMap((w) => w.runs ?? [])
  for (let i = 0; i < runRows.length; i += RUN_INSERT_CHUNK) stmts.push(runInsert(runRows.slice(i, i + RUN_INSERT_CHUNK)))
  const firstUpdate = stmts.length
  for (const u of runUpdates(writes.flatMap((w) => (w.update ? [w.update] : [])))) stmts.push(u)
  const lastUpdate = stmts.length
  const rows = writes.flatMap((w) => w.events)
  for (let i = 0; i < rows.length; i += EVENT_INSERT_CHUNK) stmts.push(eventInsert(rows.slice(i, i + EVENT_INSERT_CHUNK)))
  const touched = invalidate ? writes.flatMap((w) => w.runId ?? w.runs?.map((r) => r.id) ?? []) : []
  invalidate?.(touched)
  let results: Awaited<ReturnType<ReturnType<typeof rawClient>['batch']>>
  try {
    // 'write' begins IMMEDIATE: the write lock is taken (waiting out the busy timeout) before
    // anything is read, so a batch never has to upgrade a stale read under another process's writes.
    results = await rawClient(db).batch(stmts, 'write')
  } catch (err) {
    invalidate?.(touched)
    // Only a lone write can tell whose statement failed: a seq already taken is a lost race.
    if (writes.length === 1 && /UNIQUE constraint failed/i.test(String((err as Error)?.message ?? err)) && writes[0]!.runId) throw new SeqConflictError(writes[0]!.runId)
    throw err
  }
  invalidate?.(touched)
  // Runs whose update matched (RETURNING id), and each event's id by (run, seq).
  const updated = new Set<string>()
  for (let i = firstUpdate; i < lastUpdate; i++) for (const r of results[i]!.rows) updated.add(String(r[0]))
  const ids = new Map<string, number>()
  for (let i = lastUpdate; i < results.length; i++) for (const r of results[i]!.rows) ids.set(`${String(r[1])}:${Number(r[2])}`, Number(r[0]))
  return writes.map((w) => {
    try {
      return { value: w.finish(!!w.update && updated.has(w.update.id), w.events.map((e) => ids.get(`${e.runId}:${e.seq}`)!)) }
    } catch (error) {
      return { error }
    }
  })
}
