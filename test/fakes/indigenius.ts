import { header, IdempotencyStore, isObject, nextInScript, startFakeServer, type FakeCommonOptions, type FakeReply, type FakeServer } from './common.ts'

/**
 * Fake Indigenius API (as docs/connectors.md describes it).
 *
 * Auth: `X-API-Key`; each key has scopes (`keys` option; default `ind-key` with read+write and
 * `ind-read` with read only). Missing/unknown key → 401; missing scope → 403
 * {statusCode: 403, message: "Missing required scope: workflows:write", error: "Forbidden"}
 * (NestJS-style bodies: the page gives status codes only, and its DTO wording suggests NestJS).
 *
 * Routes:
 * - POST /v1/workflows (write) → 201 the workflow {_id (24 hex), title, callbackUrl, webhook, endCall};
 *   400 without title.
 * - GET /v1/workflows (read) → {data: [...], total} (shape not on the page).
 * - GET|PATCH|DELETE /v1/workflows/{id} → the workflow / patched workflow / {status: true}; 404 unknown.
 * - POST /v1/workflows/{id}/run (write) → 201 {status: true, message: "Workflow execution started", jobId}.
 * - GET /v1/workflows/jobs/{jobId} (read) → the job (shape not on the page): by default
 *   {status: true, data: {jobId, workflowId, state, progress, result?, failReason?, createdAt, updatedAt}};
 *   with `jobShape: 'agenda'` an Agenda job document without a status word {_id, name, data,
 *   nextRunAt, lastRunAt, lockedAt, lastFinishedAt, failedAt, failReason, result?}.
 * - POST /v1/workflows/{id}/cancel (write) → 201 {status: true, message: "Workflow cancelled"}; every
 *   job of the workflow not finished yet becomes `cancelled` (what the cancel affects is not on the page).
 * - GET /v1/workflows/{id}/jobs (read) → {data: [jobs]}.
 * - POST /v1/workflows/schedule (write) {workFlowId, scheduledDate (ISO 8601), timezone (GMT_plus_1
 *   style)} → 201 {status: true, message, jobId} with the job `scheduled`; 400 on a bad date or zone.
 *
 * Progression: `advance(jobId, state, patch)` (async: when the job reaches a final state the fake
 * pushes {jobId, workflowId, state, result?, error?} to the workflow's callbackUrl, and to webhook.url
 * when it differs); or `script` (each job read moves one step).
 */

export interface IndJob {
  jobId: string
  workflowId: string
  state: string
  progress?: number
  result?: unknown
  failReason?: string
  createdAt: string
  updatedAt: string
  lastRunAt?: string
  lastFinishedAt?: string
  failedAt?: string
  nextRunAt?: string
  body?: unknown
}

export interface IndWorkflow {
  _id: string
  title: string
  callbackUrl?: string
  webhook?: { url?: string; [k: string]: unknown }
  [k: string]: unknown
}

export interface FakeIndigeniusOptions extends FakeCommonOptions {
  keys?: Record<string, string[]>
  workflows?: IndWorkflow[]
  jobShape?: 'state' | 'agenda'
  script?: string[]
  /** Push final states to the workflow's callbackUrl / webhook.url (default true). */
  push?: boolean
}

export interface FakeIndigenius extends FakeServer {
  state: {
    workflows: Map<string, IndWorkflow>
    jobs: Map<string, IndJob>
    triggers: number
    pushes: Array<{ url: string; body: unknown; status: number }>
  }
  advance(jobId: string, state: string, patch?: Partial<IndJob>): Promise<IndJob>
}

const FINAL = new Set(['completed', 'failed', 'cancelled'])
const hex24 = (n: number) => n.toString(16).padStart(24, '0')

export async function startFakeIndigenius(opts: FakeIndigeniusOptions = {}): Promise<FakeIndigenius> {
  const keys = opts.keys ?? { 'ind-key': ['workflows:read', 'workflows:write'], 'ind-read': ['workflows:read'] }
  const workflows = new Map<string, IndWorkflow>()
  for (const w of opts.workflows ?? [{ _id: '665e4a34c65bb95f2f2d72e1', title: 'Lead follow-up' }]) workflows.set(w._id, { ...w })
  const jobs = new Map<string, IndJob>()
  const pushes: FakeIndigenius['state']['pushes'] = []
  const idem = new IdempotencyStore()
  let wfSeq = 1
  let jobSeq = 0
  let triggers = 0

  const newJob = (workflowId: string, state: string, extra: Partial<IndJob> = {}): IndJob => {
    const now = new Date().toISOString()
    const job: IndJob = { jobId: `job_${String(++jobSeq).padStart(8, '0')}`, workflowId, state, progress: 0, createdAt: now, updatedAt: now, ...extra }
    jobs.set(job.jobId, job)
    return job
  }
  const setState = (job: IndJob, state: string, patch: Partial<IndJob> = {}) => {
    const now = new Date().toISOString()
    job.state = state
    job.updatedAt = now
    if (state === 'running') { job.lastRunAt ??= now; job.progress = job.progress || 0.1 }
    if (state === 'completed') { job.lastRunAt ??= now; job.lastFinishedAt = now; job.progress = 1; job.result ??= { summary: 'workflow finished', calls: 1 } }
    if (state === 'failed') { job.lastRunAt ??= now; job.failedAt = now; job.lastFinishedAt = now; job.failReason ??= 'call flow failed' }
    Object.assign(job, patch)
  }
  const view = (job: IndJob): unknown => {
    if (opts.jobShape === 'agenda') {
      return {
        _id: job.jobId, name: 'run-workflow', data: { workflowId: job.workflowId },
        nextRunAt: job.state === 'scheduled' ? job.nextRunAt ?? new Date(Date.now() + 3_600_000).toISOString() : null,
        lastRunAt: job.lastRunAt ?? null,
        lockedAt: job.state === 'running' ? job.lastRunAt : null,
        lastFinishedAt: job.lastFinishedAt ?? null,
        failedAt: job.failedAt ?? null,
        failReason: job.failReason ?? null,
        ...(job.result !== undefined ? { result: job.result } : {}),
      }
    }
    const { body: _b, lastRunAt: _l, lastFinishedAt: _f, failedAt: _fa, nextRunAt: _n, ...rest } = job
    if (job.state !== 'failed') delete (rest as Partial<IndJob>).failReason
    if (job.state !== 'completed') delete (rest as Partial<IndJob>).result
    return { status: true, data: rest }
  }
  const push = async (job: IndJob) => {
    if (opts.push === false) return
    const wf = workflows.get(job.workflowId)
    const urls = [...new Set([wf?.callbackUrl, wf?.webhook?.url].filter((u): u is string => typeof u === 'string' && u.length > 0))]
    const body = { event: 'workflow.job.' + job.state, jobId: job.jobId, workflowId: job.workflowId, state: job.state, ...(job.result !== undefined && job.state === 'completed' ? { result: job.result } : {}), ...(job.state === 'failed' ? { error: job.failReason } : {}) }
    for (const url of urls) {
      try {
        const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
        await res.text()
        pushes.push({ url, body, status: res.status })
      } catch {
        pushes.push({ url, body, status: 0 })
      }
    }
  }

  const forbidden = (scope: string): FakeReply => ({ status: 403, body: { statusCode: 403, message: `Missing required scope: ${scope}`, error: 'Forbidden' } })
  const notFound = (what: string): FakeReply => ({ status: 404, body: { statusCode: 404, message: `${what} not found`, error: 'Not Found' } })

  const server = await startFakeServer(async (req): Promise<FakeReply> => {
    const key = header(req, 'x-api-key')
    const scopes = key ? keys[key] : undefined
    if (!scopes) return { status: 401, body: { statusCode: 401, message: 'Invalid or missing API key', error: 'Unauthorized' } }
    const write = req.method !== 'GET'
    const need = write ? 'workflows:write' : 'workflows:read'
    if (!scopes.includes(need)) return forbidden(need)
    const b = isObject(req.body) ? req.body : {}
    const p = req.path

    if (p === '/v1/workflows' && req.method === 'GET') return { status: 200, body: { data: [...workflows.values()], total: workflows.size } }
    if (p === '/v1/workflows' && req.method === 'POST') {
      if (typeof b.title !== 'string' || !b.title) return { status: 400, body: { statusCode: 400, message: ['title must be a string', 'title should not be empty'], error: 'Bad Request' } }
      const wf: IndWorkflow = { ...b, _id: hex24(0xabc000 + wfSeq++), title: b.title }
      workflows.set(wf._id, wf)
      return { status: 201, body: wf }
    }
    if (p === '/v1/workflows/schedule' && req.method === 'POST') {
      const id = String(b.workFlowId ?? '')
      const errs: string[] = []
      if (!id) errs.push('workFlowId should not be empty')
      if (typeof b.scheduledDate !== 'string' || Number.isNaN(Date.parse(b.scheduledDate))) errs.push('scheduledDate must be a valid ISO 8601 date string')
      if (typeof b.timezone !== 'string' || !/^GMT(_(plus|minus)_\d{1,2}(_\d{2})?)?$/.test(b.timezone)) errs.push('timezone must be a valid enum value')
      if (errs.length) return { status: 400, body: { statusCode: 400, message: errs, error: 'Bad Request' } }
      if (!workflows.has(id)) return notFound('Workflow')
      const job = newJob(id, 'scheduled', { nextRunAt: b.scheduledDate as string, body: b })
      return { status: 201, body: { status: true, message: 'Workflow scheduled', jobId: job.jobId } }
    }
    let m = /^\/v1\/workflows\/jobs\/([^/]+)$/.exec(p)
    if (m && req.method === 'GET') {
      const job = jobs.get(decodeURIComponent(m[1]))
      if (!job) return notFound('Job')
      if (opts.script) setState(job, nextInScript(opts.script, job.state))
      return { status: 200, body: view(job) }
    }
    m = /^\/v1\/workflows\/([^/]+)(?:\/(run|cancel|jobs|summary|summary\/timeline|summary\/report))?$/.exec(p)
    if (m) {
      const wf = workflows.get(decodeURIComponent(m[1]))
      if (!wf) return notFound('Workflow')
      const sub = m[2]
      if (!sub && req.method === 'GET') return { status: 200, body: wf }
      if (!sub && req.method === 'PATCH') {
        Object.assign(wf, b, { _id: wf._id })
        return { status: 200, body: wf }
      }
      if (!sub && req.method === 'DELETE') {
        workflows.delete(wf._id)
        return { status: 200, body: { status: true, message: 'Workflow deleted' } }
      }
      if (sub === 'run' && req.method === 'POST') {
        return idem.handle(req, () => {
          triggers++
          const job = newJob(wf._id, 'queued', { body: req.body })
          return { status: 201, body: { status: true, message: 'Workflow execution started', jobId: job.jobId } }
        })
      }
      if (sub === 'cancel' && req.method === 'POST') {
        for (const job of jobs.values()) if (job.workflowId === wf._id && !FINAL.has(job.state)) setState(job, 'cancelled')
        return { status: 201, body: { status: true, message: 'Workflow cancelled' } }
      }
      if (sub === 'jobs' && req.method === 'GET') return { status: 200, body: { data: [...jobs.values()].filter((j) => j.workflowId === wf._id).map(view) } }
      if (sub?.startsWith('summary') && req.method === 'GET') return { status: 200, body: { status: true, data: { workflowId: wf._id, jobs: [...jobs.values()].filter((j) => j.workflowId === wf._id).length } } }
    }
    return { status: 404, body: { statusCode: 404, message: `Cannot ${req.method} ${p}`, error: 'Not Found' } }
  }, opts)

  return Object.assign(server, {
    state: { workflows, jobs, get triggers() { return triggers }, pushes },
    async advance(jobId: string, state: string, patch?: Partial<IndJob>) {
      const job = jobs.get(jobId)
      if (!job) throw new Error(`no job ${jobId}`)
      setState(job, state, patch)
      if (FINAL.has(state)) await push(job)
      return job
    },
  })
}
