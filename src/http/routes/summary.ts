import type { Hono } from 'hono'
import * as z from 'zod'
import type { AppDeps, RouteContext } from '../context.ts'
import { valid } from '../context.ts'
import { tenantOf, type AuthEnv } from '../auth.ts'
import { ApiError, found } from '../errors.ts'
import { IdParam } from '../schemas.ts'

const BUCKETS = { hour: 3_600_000, day: 86_400_000 } as const
const DEFAULT_SPAN = { hour: 86_400_000, day: 30 * 86_400_000 } as const
const MAX_BUCKETS = 2_000
const isoDate = z.string().datetime({ offset: true })

const SummaryQuery = z.object({
  from: isoDate.optional().describe('start of the window (runs created at or after); default: to minus 24 h (hour) or 30 days (day)'),
  to: isoDate.optional().describe('end of the window (exclusive); default now'),
  bucket: z.enum(['hour', 'day']).default('hour').describe('timeline bucket, aligned to UTC'),
})
const Summary = z.object({
  workflow_id: z.string(), from: z.string(), to: z.string(), bucket: z.enum(['hour', 'day']),
  total: z.number().int(), counts: z.record(z.string(), z.number().int()).describe('runs by current status'),
  finished: z.number().int(), success_rate: z.number().nullable().describe('completed / finished runs'),
  duration_ms: z.object({ count: z.number().int(), p50: z.number().nullable(), p95: z.number().nullable(), avg: z.number().nullable(), max: z.number().nullable() }),
  upstream_errors: z.number().int().describe('transient upstream errors (run.error events) in the window'),
  timeline: z.array(z.object({ start: z.string(), total: z.number().int(), completed: z.number().int(), failed: z.number().int(), canceled: z.number().int(), timed_out: z.number().int(), upstream_errors: z.number().int() })),
}).meta({ id: 'WorkflowSummary' })

/** GET /v1/workflows/{id}/summary: counts, success rate, durations and a timeline, computed in SQL. */
export function registerSummaryRoutes(app: Hono<AuthEnv>, deps: AppDeps, { auth, documented }: RouteContext): void {
  const d = documented({ method: 'get', path: '/v1/workflows/:id/summary', summary: 'Counts by status, success rate, p50/p95 durations and runs per hour or day over a window', tag: 'workflows', scope: 'runs:read', params: IdParam, query: SummaryQuery, response: Summary })
  app.get(d.path, auth('runs:read'), valid('param', IdParam), valid('query', SummaryQuery), async (c) => {
    const tenantId = tenantOf(c.get('principal'))
    const workflow = found(await deps.store.catalog.getWorkflow(tenantId, c.req.valid('param').id), 'workflow')
    const q = c.req.valid('query')
    const to = q.to ? Date.parse(q.to) : deps.clock.now()
    const from = q.from ? Date.parse(q.from) : to - DEFAULT_SPAN[q.bucket]
    const bucketMs = BUCKETS[q.bucket]
    if (from >= to) throw new ApiError(400, 'validation_failed', 'from must be before to', [{ path: 'query.from', message: 'not before to' }])
    if ((to - from) / bucketMs > MAX_BUCKETS) throw new ApiError(400, 'validation_failed', `at most ${MAX_BUCKETS} buckets: use a wider bucket or a shorter window`, [{ path: 'query.bucket', message: 'too many buckets' }])
    const s = await deps.store.workflowSummary({ workflowId: workflow.id, from, to, bucketMs })
    return c.json({
      workflow_id: workflow.id, from: new Date(from).toISOString(), to: new Date(to).toISOString(), bucket: q.bucket,
      total: s.total, counts: s.counts, finished: s.finished, success_rate: s.successRate, duration_ms: s.durations, upstream_errors: s.upstreamErrors,
      timeline: s.timeline.map((t) => ({ start: new Date(t.start).toISOString(), total: t.total, completed: t.completed, failed: t.failed, canceled: t.canceled, timed_out: t.timedOut, upstream_errors: t.upstreamErrors })),
    })
  })
}
