import * as z from 'zod'
import { defineConnector } from '../../core/define-connector.ts'
import type { RunStatus } from '../../core/domain.ts'
import { getPath, type UpstreamRequest, type UpstreamResponse } from '../request.ts'
import { apiKeyApi, badAnswer, finalError, firstArray, idempotencyHeaders, isRecord, mapStatus, matchOkPost, messageOf, normaliseProgress, rewrap, testByListing, upstreamWorkflows, upstreamWorkflowId, VendorConnection } from '../shared.ts'
import { CANCEL_NOT_FORWARDED, UpstreamError, type ConnectorContext, type Observation, type RunRef, type UpstreamWorkflow } from '../types.ts'

/**
 * Indigenius: its API as runrelay uses it (described in docs/connectors.md).
 *
 * - auth: `X-API-Key`; reads need the `workflows:read` scope, writes `workflows:write`.
 * - trigger: `POST /v1/workflows/{id}/run` (no body documented) → 201 {status: true, message, jobId}.
 * - poll: `GET /v1/workflows/jobs/{jobId}`. Its answer's shape is not documented, so it is read
 *   defensively (see observeJob): a status word from `status` (when a string), `state`, `jobStatus`…
 *   at the top level or under `data` / `job`; failing that, Agenda-style timestamps (`failedAt` /
 *   `failReason`, `lastFinishedAt`, `lockedAt` / `lastRunAt`, `nextRunAt`); progress, result and error
 *   from the usual names. The raw answer is always kept.
 * - cancel: `POST /v1/workflows/{id}/cancel` cancels the whole workflow (every unfinished job of it),
 *   so it is sent only when no other run of that upstream workflow is active in runrelay; otherwise
 *   the cancel throws CANCEL_NOT_FORWARDED and the run is canceled in runrelay only. A later 404 for
 *   the job after a cancel is read as canceled.
 * - list: `GET /v1/workflows` (array, or {data|items|workflows: [...]}); also the connection test.
 * - push: the callback target lives on the workflow (`callbackUrl`, `webhook.url`), not on the run, so
 *   before each run the connector PATCHes `/v1/workflows/{id}` with both aimed at ctx.callbackUrl,
 *   sending the workflow's webhook object with only `url` changed (pointCallback; `pushCallback:
 *   false` turns it off), retried on 429 per Retry-After within a bound. The customer's own targets
 *   are kept in the run's state and put back when the last active run of the workflow ends
 *   (restoreCallback, from `finished`). Best effort: if the PATCH fails the run still starts and is
 *   polled. With concurrent runs of one workflow the last PATCH wins; parseCallback therefore
 *   ignores a callback naming another jobId, and polling still settles the other runs.
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

const ConnectionConfig = VendorConnection.extend({
  pushCallback: z.boolean().optional(),
})

const WorkflowConfig = z.object({
  pushCallback: z.boolean().optional(),
  /** Send the run's input as the JSON body of /run (Indigenius documents no body; off by default). */
  sendInput: z.boolean().optional(),
}).passthrough()

/** What the workflow's push targets were before runrelay pointed them at a run (null: unset). */
const PriorTargets = z.object({ callbackUrl: z.string().nullable(), webhookUrl: z.string().nullable() })
type PriorTargets = z.infer<typeof PriorTargets>

/**
 * What a run keeps: whether its workflow's callback was pointed at it (and what was there
 * before), why not, and whether a cancel was sent. Read leniently: a stored value of another
 * shape counts as absent.
 */
const RunState = z.object({
  push: z.boolean().optional().catch(undefined),
  priorCallback: PriorTargets.optional().catch(undefined),
  pushError: z.string().optional().catch(undefined),
  cancelRequested: z.boolean().optional().catch(undefined),
}).passthrough()
type RunState = z.infer<typeof RunState>

/** A call's context, its configs parsed by the schemas above (defineConnector). */
type Ctx = ConnectorContext<z.infer<typeof ConnectionConfig>, z.infer<typeof WorkflowConfig>>

type Scope = 'workflows:read' | 'workflows:write'

const api = apiKeyApi('X-API-Key')

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

async function call<T = unknown>(ctx: Ctx, path: string, req: UpstreamRequest, scope: Scope, what: string): Promise<UpstreamResponse<T>> {
  try {
    return await api.call<T>(ctx, path, req)
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

const pushEnabled = (ctx: Ctx) => ctx.workflow.config.pushCallback !== false && ctx.connection.config.pushCallback !== false && !!ctx.callbackUrl

/** runrelay's run callback URLs on this server share the run callback URL's path up to the run id. */
function isRunCallbackUrl(ctx: Ctx, url: unknown): boolean {
  if (typeof url !== 'string' || !ctx.callbackUrl) return false
  try {
    const ours = new URL(ctx.callbackUrl)
    const theirs = new URL(url)
    return theirs.origin === ours.origin && theirs.pathname.startsWith(ours.pathname.slice(0, ours.pathname.lastIndexOf('/') + 1))
  } catch {
    return false
  }
}

/** The customer's own targets, remembered per workflow in this process (a second run finds runrelay's URL in place). */
const priorKey = (ctx: Ctx) => `indigenius:prior:${ctx.connection.id}:${ctx.workflow.upstreamWorkflowId}`

/** Longest total wait on 429s around the callback PATCH (and its GET) of one trigger or restore. */
const RATE_LIMIT_BUDGET_MS = 10_000
const RATE_LIMIT_ATTEMPTS = 4
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** A call retried on 429 after its Retry-After (1 s without one), within a bounded budget. */
async function callRetrying<T = unknown>(ctx: Ctx, path: string, req: UpstreamRequest, scope: Scope, what: string): Promise<UpstreamResponse<T>> {
  let waited = 0
  for (let attempt = 1; ; attempt++) {
    try {
      return await call<T>(ctx, path, req, scope, what)
    } catch (err) {
      if (!(err instanceof UpstreamError) || err.status !== 429 || attempt >= RATE_LIMIT_ATTEMPTS) throw err
      const wait = Math.max(0, (err.notBefore ?? ctx.now() + 1_000) - ctx.now())
      if (waited + wait > RATE_LIMIT_BUDGET_MS) throw err
      waited += wait
      await sleep(wait)
    }
  }
}

type WorkflowDoc = { callbackUrl?: unknown; webhook?: unknown }

/**
 * Point the workflow's `callbackUrl` and `webhook.url` at this run. The PATCH carries the
 * webhook object as the workflow has it, with only `url` changed, so fields runrelay did not
 * set (`webhook.secret`…) survive an upstream that replaces the object. Returns the targets
 * that were there before (the customer's, even when another run's URL is in place), or
 * undefined when they are unknown (another process set runrelay's URL).
 */
async function pointCallback(ctx: Ctx, wfPath: string, id: string): Promise<PriorTargets | undefined> {
  const current = (await callRetrying<WorkflowDoc>(ctx, wfPath, {}, 'workflows:read', `workflow ${id} (reading its callback)`)).body
  const webhook = isRecord(current?.webhook) ? current.webhook : {}
  let prior: PriorTargets | undefined
  if (isRunCallbackUrl(ctx, current?.callbackUrl) || isRunCallbackUrl(ctx, webhook.url)) {
    prior = cachedPrior(ctx)
  } else {
    prior = { callbackUrl: typeof current?.callbackUrl === 'string' ? current.callbackUrl : null, webhookUrl: typeof webhook.url === 'string' ? webhook.url : null }
    ctx.cache.set(priorKey(ctx), prior)
  }
  await callRetrying(ctx, wfPath, { method: 'PATCH', body: { callbackUrl: ctx.callbackUrl, webhook: { ...webhook, url: ctx.callbackUrl } } }, 'workflows:write', `workflow ${id} (setting its callback)`)
  return prior
}

/**
 * When the last active run of the workflow ends, put back the targets that were there before
 * runrelay's first PATCH, unless someone changed them since (then they are left alone).
 */
async function restoreCallback(ctx: Ctx, run: RunRef<RunState>): Promise<void> {
  if (run.state.push !== true) return
  if (((await ctx.otherActiveRuns?.()) ?? []).length > 0) return // the last run to end restores
  const prior = run.state.priorCallback ?? cachedPrior(ctx)
  if (!prior) return
  const id = ctx.workflow.upstreamWorkflowId
  const wfPath = `/v1/workflows/${encodeURIComponent(id)}`
  const current = (await callRetrying<WorkflowDoc>(ctx, wfPath, {}, 'workflows:read', `workflow ${id} (reading its callback)`)).body
  const webhook: Record<string, unknown> = isRecord(current?.webhook) ? { ...current.webhook } : {}
  if (!isRunCallbackUrl(ctx, current?.callbackUrl) && !isRunCallbackUrl(ctx, webhook.url)) return
  if (prior.webhookUrl === null) delete webhook.url
  else webhook.url = prior.webhookUrl
  await callRetrying(ctx, wfPath, { method: 'PATCH', body: { callbackUrl: prior.callbackUrl, webhook } }, 'workflows:write', `workflow ${id} (restoring its callback)`)
  ctx.cache.delete(priorKey(ctx))
}

/** The customer's targets this process remembered for the workflow (priorKey), if any. */
function cachedPrior(ctx: Ctx): PriorTargets | undefined {
  const held = PriorTargets.safeParse(ctx.cache.get(priorKey(ctx)))
  return held.success ? held.data : undefined
}

async function listWorkflows(ctx: Ctx): Promise<UpstreamWorkflow[]> {
  const res = await call(ctx, '/v1/workflows', {}, 'workflows:read', 'workflow list')
  return upstreamWorkflows(firstArray(res.body, ['', 'data', 'items', 'workflows', 'data.workflows', 'data.items']), ['_id', 'id'], ['title', 'name'])
}

export const indigeniusConnector = defineConnector({
  provider: 'indigenius',
  connectionConfig: ConnectionConfig,
  ...api.auth,
  workflowConfig: WorkflowConfig,
  runState: RunState,
  defaultPollPolicy: { firstIntervalMs: 5_000, maxIntervalMs: 60_000, deadlineMs: 2 * 3_600_000 },

  async trigger(ctx, req) {
    const id = upstreamWorkflowId(ctx, 'the Indigenius workflow id is required')
    const wfPath = `/v1/workflows/${encodeURIComponent(id)}`
    const state: RunState = {}
    if (pushEnabled(ctx)) {
      try {
        const prior = await pointCallback(ctx, wfPath, id)
        state.push = true
        if (prior) state.priorCallback = prior
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
    if (!jobId) throw badAnswer(res, 'Indigenius run answered without a jobId')
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
      // Indigenius cancels a whole workflow: other people's runs of it must not be stopped.
      const others = (await ctx.otherActiveRuns?.()) ?? []
      if (others.length > 0) {
        throw finalError(CANCEL_NOT_FORWARDED, `Indigenius cancels whole workflows and workflow ${id} has ${others.length} other active run(s) (${others.slice(0, 5).join(', ')}): canceled in runrelay only, the Indigenius job keeps running`)
      }
      const res = await call(ctx, `/v1/workflows/${encodeURIComponent(id)}/cancel`, { method: 'POST' }, 'workflows:write', `workflow ${id} (cancel)`)
      const message = messageText(res.body)
      return { status: 'canceled', raw: res.body, message, state: { ...run.state, cancelRequested: true } }
    },
  },

  listWorkflows,

  async testConnection(ctx) {
    return testByListing(() => listWorkflows(ctx), 'authenticated (workflows:read)')
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

  async finished(ctx, run) {
    await restoreCallback(ctx, run)
  },

  parseCallback(ctx, run, body) {
    const jobId = jobIdOf(body)
    if (jobId !== undefined && jobId !== run.upstreamId) {
      // The workflow's callback target is shared by its runs: this one belongs to another job.
      return { raw: body, message: `callback for another Indigenius job (${jobId})` }
    }
    return observeJob(body, ctx.now())
  },
})
