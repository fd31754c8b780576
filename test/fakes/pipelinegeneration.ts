import { header, IdempotencyStore, isObject, nextInScript, startFakeServer, type FakeCommonOptions, type FakeReply, type FakeServer } from './common.ts'

/**
 * Fake PipelineGeneration API (as docs/connectors.md describes it).
 *
 * - `x-api-key` required: missing or wrong → 401 `{"error": "Invalid API key"}` (status/body not on
 *   the page; the page's only error shape is `{"error": "..."}`, so the fake uses it everywhere).
 * - GET /v1/workflows → array of workflows.
 * - POST /v1/workflows/trigger → 202 {execution_id, workflow_id, status: "queued", created_at};
 *   400 {"error": "workflow_id is required"}; unknown workflow → 404 {"error": "workflow not found"}
 *   (not on the page); company_id/contact_id not UUIDs → 400 {"error": "company_id must be a UUID"}
 *   (not on the page, plausible).
 * - GET /v1/workflows/executions/{id} → the execution; unknown → 404 {"error": "execution not found"}.
 *
 * Progression: `advance(id, status, patch)` by hand, or `script` (each Get Execution moves the
 * execution one step along it before answering). started_at is set on running, completed_at on
 * completed/failed, result on completed, error on failed.
 */

export interface PgExecution {
  execution_id: string
  workflow_id: string
  status: string
  created_at: string
  started_at?: string
  completed_at?: string
  result?: unknown
  error?: string
  request: Record<string, unknown>
}

export interface FakePipelineGenerationOptions extends FakeCommonOptions {
  apiKey?: string
  workflows?: Array<{ id: string; name: string; description?: string; status?: string; created_at?: string }>
  /** Statuses an execution walks through, one step per Get Execution (e.g. ['queued', 'running', 'completed']). */
  script?: string[]
  /** Result given to executions that complete without an explicit result. */
  result?: unknown
}

export interface FakePipelineGeneration extends FakeServer {
  state: { executions: Map<string, PgExecution>; triggers: number; idempotentReplays: () => number }
  advance(id: string, status: string, patch?: Partial<PgExecution>): PgExecution
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

export async function startFakePipelineGeneration(opts: FakePipelineGenerationOptions = {}): Promise<FakePipelineGeneration> {
  const apiKey = opts.apiKey ?? 'pg-key'
  const workflows = opts.workflows ?? [
    { id: 'wf_abc123', name: 'Account Research', description: 'Deep-dive research on a target account', status: 'active', created_at: '2026-01-10T08:00:00Z' },
    { id: 'wf_def456', name: 'Contact Enrichment', description: 'Enrich contact profiles with latest data', status: 'active', created_at: '2026-02-05T12:00:00Z' },
  ]
  const executions = new Map<string, PgExecution>()
  const idem = new IdempotencyStore()
  let seq = 0
  let triggers = 0

  const view = (e: PgExecution) => {
    const { request: _request, ...rest } = e
    return rest
  }
  const setStatus = (e: PgExecution, status: string, patch: Partial<PgExecution> = {}) => {
    e.status = status
    const now = new Date().toISOString()
    if (status === 'running' && !e.started_at) e.started_at = now
    if (status === 'completed' || status === 'failed') {
      e.started_at ??= now
      e.completed_at ??= now
    }
    if (status === 'completed' && e.result === undefined) e.result = opts.result ?? { summary: 'Research completed successfully', outputs: { report_id: 'rpt_001', insights_count: 12 } }
    if (status === 'failed' && e.error === undefined) e.error = 'execution failed'
    Object.assign(e, patch)
    return e
  }

  const server = await startFakeServer(async (req): Promise<FakeReply> => {
    if (header(req, 'x-api-key') !== apiKey) return { status: 401, body: { error: 'Invalid API key' } }
    if (req.method === 'GET' && req.path === '/v1/workflows') return { status: 200, body: workflows }
    if (req.method === 'POST' && req.path === '/v1/workflows/trigger') {
      const b = isObject(req.body) ? req.body : {}
      if (typeof b.workflow_id !== 'string' || b.workflow_id === '') return { status: 400, body: { error: 'workflow_id is required' } }
      for (const k of ['company_id', 'contact_id']) {
        if (b[k] !== undefined && (typeof b[k] !== 'string' || !UUID.test(b[k] as string))) return { status: 400, body: { error: `${k} must be a UUID` } }
      }
      if (!workflows.some((w) => w.id === b.workflow_id)) return { status: 404, body: { error: 'workflow not found' } }
      return idem.handle(req, () => {
        triggers++
        const e: PgExecution = {
          execution_id: `exec_${String(++seq).padStart(6, '0')}`,
          workflow_id: b.workflow_id as string,
          status: 'queued',
          created_at: new Date().toISOString(),
          request: b,
        }
        executions.set(e.execution_id, e)
        return { status: 202, body: { execution_id: e.execution_id, workflow_id: e.workflow_id, status: e.status, created_at: e.created_at } }
      })
    }
    const m = /^\/v1\/workflows\/executions\/([^/]+)$/.exec(req.path)
    if (req.method === 'GET' && m) {
      const e = executions.get(decodeURIComponent(m[1]))
      if (!e) return { status: 404, body: { error: 'execution not found' } }
      if (opts.script) setStatus(e, nextInScript(opts.script, e.status))
      return { status: 200, body: view(e) }
    }
    return { status: 404, body: { error: 'not found' } }
  }, opts)

  return Object.assign(server, {
    state: { executions, get triggers() { return triggers }, idempotentReplays: () => idem.replays },
    advance(id: string, status: string, patch?: Partial<PgExecution>) {
      const e = executions.get(id)
      if (!e) throw new Error(`no execution ${id}`)
      return setStatus(e, status, patch)
    },
  })
}
