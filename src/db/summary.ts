import { and, asc, eq, gte, isNotNull, lt, sql } from 'drizzle-orm'
import { events, runs } from './schema.ts'
import type { Db } from './db.ts'

export interface SummaryWindow { workflowId: string; from: number; to: number; bucketMs: number }

export interface WorkflowSummary {
  counts: Record<string, number>
  total: number
  finished: number
  completed: number
  /** completed / finished (terminal) runs, null when none finished. */
  successRate: number | null
  durations: { count: number; p50: number | null; p95: number | null; avg: number | null; max: number | null }
  timeline: Array<{ start: number; total: number; completed: number; failed: number; canceled: number; timedOut: number; upstreamErrors: number }>
  /** Transient upstream errors (run.error events) in the window. */
  upstreamErrors: number
}

/**
 * A workflow's runs created in [from, to), all in SQL over the covering index
 * runs_workflow_summary (workflow_id, created_at, status, started_at, finished_at): counts by
 * status, durations (percentiles by nearest rank: an ORDER BY … LIMIT 1 OFFSET k each) and a
 * timeline in buckets aligned to the epoch (UTC hours and days).
 */
export async function workflowSummary(db: Db, w: SummaryWindow): Promise<WorkflowSummary> {
  const window = and(eq(runs.workflowId, w.workflowId), gte(runs.createdAt, w.from), lt(runs.createdAt, w.to))
  const timed = and(window, isNotNull(runs.startedAt), isNotNull(runs.finishedAt))
  const duration = sql<number>`(${runs.finishedAt} - ${runs.startedAt})`
  // An integer literal: a bound JS number arrives as REAL and the division would not truncate.
  const size = sql.raw(String(Math.trunc(w.bucketMs)))
  const bucket = sql<number>`((${runs.createdAt} / ${size}) * ${size})`
  const errorBucket = sql<number>`((${events.createdAt} / ${size}) * ${size})`
  const [byStatus, [stats], timeline, errors] = await Promise.all([
    db.select({ status: runs.status, n: sql<number>`count(*)` }).from(runs).where(window).groupBy(runs.status),
    db.select({ n: sql<number>`count(*)`, avg: sql<number | null>`avg(${duration})`, max: sql<number | null>`max(${duration})` }).from(runs).where(timed),
    db.select({
      start: bucket, total: sql<number>`count(*)`,
      completed: sql<number>`sum(case when ${runs.status} = 'completed' then 1 else 0 end)`,
      failed: sql<number>`sum(case when ${runs.status} = 'failed' then 1 else 0 end)`,
      canceled: sql<number>`sum(case when ${runs.status} = 'canceled' then 1 else 0 end)`,
      timedOut: sql<number>`sum(case when ${runs.status} = 'timed_out' then 1 else 0 end)`,
    }).from(runs).where(window).groupBy(bucket).orderBy(asc(bucket)),
    db.select({ start: errorBucket, n: sql<number>`count(*)` }).from(events)
      .where(and(eq(events.workflowId, w.workflowId), eq(events.type, 'run.error'), gte(events.createdAt, w.from), lt(events.createdAt, w.to)))
      .groupBy(errorBucket),
  ])
  const errorsAt = new Map(errors.map((e) => [Number(e.start), Number(e.n)]))
  const n = Number(stats?.n ?? 0)
  const rank = async (p: number): Promise<number | null> => {
    if (n === 0) return null
    const [r] = await db.select({ d: duration }).from(runs).where(timed).orderBy(asc(duration)).limit(1).offset(Math.max(0, Math.ceil(p * n) - 1))
    return r ? Number(r.d) : null
  }
  const [p50, p95] = await Promise.all([rank(0.5), rank(0.95)])
  const counts: Record<string, number> = {}
  for (const r of byStatus) counts[r.status] = Number(r.n)
  const total = Object.values(counts).reduce((a, b) => a + b, 0)
  const completed = counts.completed ?? 0
  const finished = completed + (counts.failed ?? 0) + (counts.canceled ?? 0) + (counts.timed_out ?? 0)
  return {
    counts, total, finished, completed, successRate: finished ? completed / finished : null,
    durations: { count: n, p50, p95, avg: stats?.avg === null || stats?.avg === undefined ? null : Math.round(Number(stats.avg)), max: stats?.max === null || stats?.max === undefined ? null : Number(stats.max) },
    // Buckets with errors but no runs created in them still show their errors.
    timeline: [...new Set([...timeline.map((t) => Number(t.start)), ...errorsAt.keys()])].sort((a, b) => a - b).map((start) => {
      const t = timeline.find((x) => Number(x.start) === start)
      return { start, total: Number(t?.total ?? 0), completed: Number(t?.completed ?? 0), failed: Number(t?.failed ?? 0), canceled: Number(t?.canceled ?? 0), timedOut: Number(t?.timedOut ?? 0), upstreamErrors: errorsAt.get(start) ?? 0 }
    }),
    upstreamErrors: [...errorsAt.values()].reduce((a, b) => a + b, 0),
  }
}
