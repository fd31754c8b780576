import * as z from 'zod'
import type { RunStatus } from '../../core/domain.ts'
import { getPath, joinUrl, requestJson, type UpstreamRequest, type UpstreamResponse } from '../request.ts'
import { finalError, idempotencyHeaders, isRecord, mapStatus, matchOkPost, messageOf, normaliseProgress, rewrap } from '../shared.ts'
import { UpstreamError, type Connector, type ConnectorContext, type Observation, type UpstreamWorkflow } from '../types.ts'

/**
 * Indigenius (shared/providers/indigenius.txt).
 *
 * - auth: `X-API-Key`; reads need the `workflows:read` scope, writes `workflows:write`.
 * - trigger: `POST /v1/workflows/{id}/run` (no body on the page) → 201 {status: true, message, jobId}.
 * - poll: `GET /v1/workflows/jobs/{jobId}`. Its answer's shape is not documented, so it is read
 *   defensively (see observeJob): a status word from `status` (when a string), `state`, `jobStatus`…
 *   at the top level or under `data` / `job`; failing that, Agenda-style timestamps (`failedAt` /
 *   `failReason`, `lastFinishedAt`, `lockedAt` / `lastRunAt`, `nextRunAt`); progress, result and error
 *   from the usual names. The raw answer is always kept.
 * - cancel: `POST /v1/workflows/{id}/cancel`. The page lists it under the *workflow* id and says
 *   nothing about a body, so it cancels the workflow's pending execution(s) on Indigenius; runrelay
 *   records the run as canceled once the call is accepted. A later 404 for the job after a cancel
 *   is read as canceled too.
 * - list: `GET /v1/workflows` (array, or {data|items|workflows: [...]}); also the connection test.
 * - push: the callback target lives on the workflow (`callbackUrl`, `webhook.url`), not on the run, so
 *   before each run the connector PATCHes `/v1/workflows/{id}` with both aimed at ctx.callbackUrl
 *   (`pushCallback: false` in the workflow or connection config turns that off; it also replaces any
 *   webhook object set by hand, minus its other fields). Best effort: if the PATCH fails the run still
 *   starts and is polled. With concurrent runs of one workflow the last PATCH wins; parseCallback
 *   therefore ignores a callback naming another jobId, and polling still settles the other runs.
 * - errors: 400 validation → `upstream_validation`; 401 → `upstream_unauthorized`; 403 → code
 *   `upstream_forbidden_scope`, naming the scope (from the answer when it names one, else the one the
 *   endpoint needs); 404 → `upstream_not_found`; 5xx transient.
 */

const JOB_STATUS: Record<string, RunStatus> = {
  scheduled: 'scheduled', delayed: 'scheduled',
  pending: 'queued', queued: 'queued', waiting: 'queued', created: 'queued', new: 'queued', prioritized: 'queued', 'waiting-children': 'queued',
  active: 'running', running: 'running', started: 'running', processing: 'running', in_progress: 'running', 'in-progress': 'running', inprogress: 'running', executing: 'running',
  paused: 'paused',
  completed: 'completed', complete: 'completed', succeeded: 'completed', success: 'completed', successful: 'completed', done: 'completed', finished: 'completed',
  failed: 'failed', failure: 'failed', error: 'failed', errored: 'failed',
  canceled: 'canceled', cancelled: 'canceled', aborted: 'canceled', stopped: 'canceled',
  timed_out: 'timed_out', timeout: 'timed_out', expired: 'timed_out',
}

const STATUS_FIELDS = ['status', 'state', 'jobStatus', 'job_status', 'executionStatus', 'execution_status', 'runStatus']

const connectionConfig = z.object({
  pushCallback: z.boolean().optional(),
  sendIdempotencyKey: z.boolean().optional(),
}).passthrough()

const credentials = z.object({ apiKey: z.string().min(1) })

const workflowConfig = z.object({
  pushCallback: z.boolean().optional(),
  /** Send the run's input as the JSON body of /run (the page shows no body; off by default). */
  sendInput: z.boolean().optional(),
}).passthrough()

type Scope = 'workflows:read' | 'workflows:write'

const headers = (ctx: ConnectorContext) => ({ 'X-API-Key': String(ctx.connection.credentials.apiKey ?? '') })

/** NestJS-style bodies ({statusCode, message, error}) carry the detail in `message` (string or list). */
function messageText(body: unknown): string | undefined {
  if (isRecord(body) && Array.isArray(body.message)) return body.message.map(String).join('; ')
  if (isRecord(body) && typeof body.message === 'string' && body.message && typeof body.statusCode === 'number') return body.message
  return messageOf(body)
}

/** Map Indigenius status-code answers to clear errors. */
export function indigeniusError(err: unknown, scope: Scope, what: string): unknown {
  if (!(err instanceof UpstreamError) || err.status === undefined) return err
  const upstream = messageText(err.body)
  const suffix = upstream ? ` (${upstream})` : ''
  switch (err.status) {
    case 400:
      return rewrap(err, { code: 'upstream_validation', message: `Indigenius rejected the request for ${what}: ${upstream ?? 'validation error'}` })
    case 401:
      return rewrap(err, { code: 'upstream_unauthorized', message: `Indigenius rejected the API key${suffix}` })
    case 403: {
      const named = /workflows:(read|write)/.exec(JSON.stringify(err.body ?? ''))?.[0] ?? scope
      return rewrap(err, { code: 'upstream_forbidden_scope', message: `the Indigenius API key lacks the ${named} scope needed for ${what}${suffix}` })
    }
    case 404:
      return rewrap(err, { code: 'upstream_not_found', message: `Indigenius ${what}: not found${suffix}` })
    default:
      return err
  }
}

async function call<T = unknown>(ctx: ConnectorContext, path: string, req: UpstreamRequest, scope: Scope, what: string): Promise<UpstreamResponse<T>> {
  try {
    return await requestJson<T>(ctx, joinUrl(ctx.connection.baseUrl, path), { ...req, headers: { ...headers(ctx), ...req.headers } })
  } catch (err) {
    throw indigeniusError(err, scope, what)
  }
}

/** The object inside an answer that describes the job (the answer, or its data / job member). */
function jobObject(body: unknown): Record<string, unknown> {
  const candidates = [body, getPath(body, 'data'), getPath(body, 'job'), getPath(body, 'data.job'), getPath(body, 'result')]
  for (const c of candidates) {
    if (!isRecord(c)) continue
    if (STATUS_FIELDS.some((f) => typeof c[f] === 'string') || 'failedAt' in c || 'lastFinishedAt' in c || 'lastRunAt' in c || 'nextRunAt' in c) return c
  }
  const d = getPath(body, 'data')
  return isRecord(d) ? d : isRecord(body) ? body : {}
}

const present = (v: unknown) => v !== undefined && v !== null && v !== '' && v !== false

/** Map a job status answer (or a pushed callback body) to an Observation. */
export function observeJob(body: unknown, now: number): Observation {
  const job = jobObject(body)
  const obs: Observation = { raw: body }
  const word = STATUS_FIELDS.map((f) => job[f]).find((v): v is string => typeof v === 'string' && v.length > 0)
  if (word) Object.assign(obs, mapStatus(word, JOB_STATUS))
  else {
    // Agenda-style job document: derive the status from its timestamps.
    if (present(job.failedAt) || present(job.failReason) || present(job.failedReason)) obs.status = 'failed'
    else if (present(job.lastFinishedAt) || present(job.finishedOn) || present(job.finishedAt)) obs.status = 'completed'
    else if (present(job.lockedAt) || present(job.lastRunAt) || present(job.processedOn) || present(job.startedAt)) obs.status = 'running'
    else if (present(job.nextRunAt) && Date.parse(String(job.nextRunAt)) > now) obs.status = 'scheduled'
  }
  const progress = normaliseProgress(job.progress ?? job.percent ?? job.percentage)
  if (progress !== undefined) obs.progress = progress
  if (typeof job.message === 'string' && obs.status !== 'failed') obs.message = job.message
  else if (typeof job.step === 'string') obs.message = job.step
  if (obs.status === 'completed') {
    const r = job.result ?? job.returnvalue ?? job.returnValue ?? job.output ?? job.summary
    obs.result = r === undefined ? job : r
  }
  if (obs.status === 'failed') {
    const message = messageText({ error: job.error, failReason: job.failReason, failedReason: job.failedReason, message: job.message }) ?? 'Indigenius job failed'
    obs.error = { code: 'upstream_run_failed', message, body }
  }
  return obs
}

function jobIdOf(body: unknown): string | undefined {
  for (const p of ['jobId', 'job_id', 'data.jobId', 'job.id', 'job.jobId', 'data.job.id']) {
    const v = getPath(body, p)
    if (typeof v === 'string' || typeof v === 'number') return String(v)
  }
  return undefined
}

/** The answer of `/run` (trigger or proxied): "Workflow execution started", unless it names a status word of its own. */
function started(body: unknown, now: number): Observation {
  const obs = observeJob(body, now)
  if (!obs.status) obs.status = 'running'
  const message = getPath(body, 'message')
  if (obs.message === undefined && typeof message === 'string') obs.message = message
  return obs
}

const pushEnabled = (ctx: ConnectorContext) => ctx.workflow.config.pushCallback !== false && ctx.connection.config.pushCallback !== false && !!ctx.callbackUrl

export const indigeniusConnector: Connector = {
  provider: 'indigenius',
  connectionConfig,
  credentials,
  workflowConfig,
  defaultPollPolicy: { firstIntervalMs: 5_000, maxIntervalMs: 60_000, deadlineMs: 2 * 3_600_000 },

  async trigger(ctx, req) {
    const id = ctx.workflow.upstreamWorkflowId
    if (!id) throw finalError('invalid_input', 'the Indigenius workflow id is required')
    const wfPath = `/v1/workflows/${encodeURIComponent(id)}`
    const state: Record<string, unknown> = {}
    if (pushEnabled(ctx)) {
      try {
        await call(ctx, wfPath, { method: 'PATCH', body: { callbackUrl: ctx.callbackUrl, webhook: { url: ctx.callbackUrl } } }, 'workflows:write', `workflow ${id} (setting its callback)`)
        state.push = true
      } catch (err) {
        state.push = false
        state.pushError = (err as Error).message
      }
    }
    const body = ctx.workflow.config.sendInput === true && req.input !== undefined ? req.input : undefined
    const res = await call(ctx, `${wfPath}/run`, { method: 'POST', body, headers: idempotencyHeaders(ctx, req.runId) }, 'workflows:write', `workflow ${id}`)
    const b = res.body
    if (isRecord(b) && b.status === false) throw finalError('upstream_rejected', `Indigenius did not start workflow ${id}: ${messageText(b) ?? 'status false'}`, { status: res.status, body: b })
    const jobId = jobIdOf(b)
    if (!jobId) throw finalError('upstream_bad_answer', 'Indigenius run answered without a jobId', { status: res.status, body: b })
    return { ...started(b, ctx.now()), upstreamId: jobId, state }
  },

  async poll(ctx, run) {
    let res: UpstreamResponse
    try {
      res = await call(ctx, `/v1/workflows/jobs/${encodeURIComponent(run.upstreamId)}`, {}, 'workflows:read', `job ${run.upstreamId}`)
    } catch (err) {
      if (err instanceof UpstreamError && err.status === 404 && run.state.cancelRequested) {
        return { status: 'canceled', upstreamStatus: 'not_found_after_cancel', raw: err.body }
      }
      throw err
    }
    if (isRecord(res.body) && res.body.status === false && jobObject(res.body) === res.body) {
      throw finalError('upstream_rejected', `Indigenius job ${run.upstreamId}: ${messageText(res.body) ?? 'status false'}`, { status: res.status, body: res.body })
    }
    return observeJob(res.body, ctx.now())
  },

  commands: {
    async cancel(ctx, run) {
      const id = ctx.workflow.upstreamWorkflowId
      const res = await call(ctx, `/v1/workflows/${encodeURIComponent(id)}/cancel`, { method: 'POST' }, 'workflows:write', `workflow ${id} (cancel)`)
      const message = messageText(res.body)
      return { status: 'canceled', raw: res.body, message, state: { ...run.state, cancelRequested: true } }
    },
  },

  async listWorkflows(ctx) {
    const res = await call(ctx, '/v1/workflows', {}, 'workflows:read', 'workflow list')
    const b = res.body
    const list = [b, getPath(b, 'data'), getPath(b, 'items'), getPath(b, 'workflows'), getPath(b, 'data.workflows'), getPath(b, 'data.items')].find(Array.isArray) ?? []
    return (list as unknown[]).filter(isRecord).map((w): UpstreamWorkflow => ({
      id: String(w._id ?? w.id),
      name: typeof w.title === 'string' ? w.title : typeof w.name === 'string' ? w.name : undefined,
      description: typeof w.description === 'string' ? w.description : undefined,
      raw: w,
    }))
  },

  async testConnection(ctx) {
    try {
      const list = await indigeniusConnector.listWorkflows!(ctx)
      return { ok: true, message: `authenticated (workflows:read); ${list.length} workflow(s) visible` }
    } catch (err) {
      return { ok: false, message: (err as Error).message }
    }
  },

  async authHeaders(ctx) {
    return headers(ctx)
  },

  matchTrigger(call) {
    const m = matchOkPost(call, /^\/v1\/workflows\/([^/]+)\/run\/?$/)
    if (!m || m[1] === 'jobs') return null
    const b = call.responseBody
    if (isRecord(b) && b.status === false) return null
    const jobId = jobIdOf(b)
    if (!jobId) return null
    return { ...started(b, Date.now()), state: { push: false }, upstreamId: jobId, upstreamWorkflowId: decodeURIComponent(m[1]!) }
  },

  callbackUpstreamId(body) {
    return jobIdOf(body)
  },

  parseCallback(ctx, run, body) {
    const jobId = jobIdOf(body)
    if (jobId !== undefined && jobId !== run.upstreamId) {
      // The workflow's callback target is shared by its runs: this one belongs to another job.
      return { raw: body, message: `callback for another Indigenius job (${jobId})` }
    }
    return observeJob(body, ctx.now())
  },
}
