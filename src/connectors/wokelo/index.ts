import * as z from 'zod'
import { defineConnector } from '../../core/define-connector.ts'
import { RunStatus, type RunStatus as RunStatusT } from '../../core/domain.ts'
import { getPath, joinUrl, requestJson, type UpstreamRequest } from '../request.ts'
import { badAnswer, fillPath, finalError, idAt, idempotencyHeaders, isRecord, mapStatus, matchOkPost, messageOf, namedWorkflow, normaliseProgress, VendorConnection } from '../shared.ts'
import type { ConnectorContext, Observation } from '../types.ts'
import { authHeader, AuthOptions, canExchange, getToken, wokeloRequest } from './auth.ts'

/**
 * Wokelo: its API and its polling and retry guidance as runrelay uses them (described in docs/connectors.md).
 *
 * Auth: a JWT in `Authorization`. Either a static `token` credential, or `username`/`password`
 * exchanged at `POST /auth/token/` (JSON body {username, password}; the token is read from
 * `access`, `token` or `access_token`, or `tokenPath` — the exchange's answer is not documented).
 * The exchanged token is cached in ctx.cache under `wokelo:token:<connection id>`, renewed before
 * its JWT `exp`, and renewed once on a 401 (then the request is retried once); it is redacted like
 * the credentials (addDerivedSecret) from the moment it is obtained. Wokelo's API
 * reference sends the bare token (`Authorization: <token>`), so that is the default;
 * `authScheme: 'bearer'` sends `Bearer <token>` for accounts that want it.
 *
 * Trigger: `POST /api/workflow_manager/start/` {workflow, workbook_name, permalink, website,
 * industry_research_topic, custom_files} → {report_id}; report_id is the upstream id. Company
 * workflows need permalink or website and industry workflows need industry_research_topic: checked
 * before calling (final `invalid_input`). The workflow kind comes from workflowConfig.kind, else
 * from the id prefix (`comp…` company, `industry…` industry); an unknown kind needs at least one of
 * the three.
 *
 * Status: which request fits a workflow report_id is not documented, so it is configurable
 * (`statusRequest` in the workflow config over the connection config over the default): the
 * default is `GET /api/enterprise/request/status/?request_id=<report_id>` answering `status`
 * PENDING | PROCESSING | COMPLETED | FAILED.
 *
 * Result: when completed, the result is a descriptive object, not the file:
 *   {report_id, file_type, download: {method: 'POST', url: <base>/api/assets/download_report/, body: {report_id, file_type}}, status: <status answer>}
 * The download answers a binary file (or a link) that needs the account's JWT, which runrelay must
 * not hand out and cannot store as a JSON result; a client with its own Wokelo credentials makes
 * that call. With `fetchResult: true`, the JSON of `GET /api/enterprise/request/result/?request_id=`
 * is fetched on completion and kept under `result.data`.
 *
 * Retry rules (vendor guidance): 400/403/404 final; 401 re-auth once; 429 exponential backoff from
 * 1 s up to 60 s (a notBefore when the answer has no Retry-After); 500 retried up to 3 times, 502
 * and 503 up to 5 times (then the error turns final). Poll once a minute, for at most 90 minutes.
 */

/** The documented status words (PENDING, PROCESSING, COMPLETED, FAILED; matched case-insensitively). */
const DEFAULT_STATUS_MAP: Record<string, RunStatusT> = { pending: 'queued', processing: 'running', completed: 'completed', failed: 'failed' }

const StatusRequest = z.object({
  method: z.enum(['GET', 'POST']).optional(),
  /** Path template; `{id}` is replaced by the report_id. */
  path: z.string().min(1).optional(),
  /** Name of the parameter carrying the report_id: a query parameter for GET, a JSON body key for POST. Empty: none. */
  param: z.string().optional(),
  /** Dotted path of the status word in the answer. */
  statusPath: z.string().optional(),
  /** Upstream status word → runrelay status (merged over the default map; case-insensitive). */
  statusMap: z.record(z.string(), RunStatus).optional(),
  /** Dotted path of an error message in the answer. */
  errorPath: z.string().optional(),
  /** Dotted path of a progress number (0..1 or 0..100). */
  progressPath: z.string().optional(),
})
type StatusRequest = z.infer<typeof StatusRequest>

const FileType = z.enum(['pdf', 'docx', 'json'])

/** Options a workflow may set and the connection may default (the workflow's win). */
const ReportOptions = {
  statusRequest: StatusRequest.optional(),
  fileType: FileType.optional(),
  fetchResult: z.boolean().optional(),
}

const ConnectionConfig = VendorConnection.extend({ ...AuthOptions.shape, ...ReportOptions })

const Credentials = z.object({
  token: z.string().min(1).optional(),
  username: z.string().min(1).optional(),
  password: z.string().min(1).optional(),
}).refine((c) => !!c.token || (!!c.username && !!c.password), { message: 'either token, or username and password, is required' })

const WorkflowConfig = z.object({
  kind: z.enum(['company', 'industry']).optional(),
  ...ReportOptions,
  /** Defaults for the start body, under the run's input. */
  workbook_name: z.string().optional(),
  industry_research_topic: z.string().optional(),
}).passthrough()

/** A call's context, its configs parsed by the schemas above (defineConnector). */
type Ctx = ConnectorContext<z.infer<typeof ConnectionConfig>, z.infer<typeof WorkflowConfig>>

const START_FIELDS = ['workbook_name', 'permalink', 'website', 'industry_research_topic', 'custom_files'] as const

// ---------------------------------------------------------------- trigger / poll

function workflowKind(ctx: Ctx): 'company' | 'industry' | undefined {
  const k = ctx.workflow.config.kind
  if (k) return k
  const id = ctx.workflow.upstreamWorkflowId.toLowerCase()
  if (id.startsWith('industry')) return 'industry'
  if (id.startsWith('comp')) return 'company'
  return undefined
}

/** The start body: the run's input over the workflow's defaults, checked against the company / industry rules. */
export function buildStartBody(ctx: Ctx, input: unknown): Record<string, unknown> {
  const inp = isRecord(input) ? input : {}
  const cfg = ctx.workflow.config
  const body: Record<string, unknown> = { workflow: ctx.workflow.upstreamWorkflowId }
  for (const f of START_FIELDS) {
    const v = inp[f] ?? cfg[f]
    if (v !== undefined && v !== null && v !== '') body[f] = v
  }
  if (!body.workflow) throw finalError('invalid_input', 'workflow is required')
  if (body.custom_files !== undefined && !Array.isArray(body.custom_files)) throw finalError('invalid_input', 'custom_files must be an array of objects')
  const kind = workflowKind(ctx)
  if (kind === 'company' && !body.permalink && !body.website) {
    throw finalError('invalid_input', 'company workflows need the company permalink or website')
  }
  if (kind === 'industry' && !body.industry_research_topic) {
    throw finalError('invalid_input', 'industry workflows need industry_research_topic')
  }
  if (kind === undefined && !body.permalink && !body.website && !body.industry_research_topic) {
    throw finalError('invalid_input', 'a Wokelo workflow needs permalink or website (company) or industry_research_topic (industry)')
  }
  return body
}

type ResolvedStatusRequest = Required<Pick<StatusRequest, 'method' | 'path' | 'param' | 'statusPath'>> & StatusRequest

function statusRequest(ctx: Ctx): ResolvedStatusRequest {
  const conn = ctx.connection.config.statusRequest ?? {}
  const wf = ctx.workflow.config.statusRequest ?? {}
  const merged: StatusRequest = { ...conn, ...wf, statusMap: { ...conn.statusMap, ...wf.statusMap } }
  return {
    ...merged,
    method: merged.method ?? 'GET',
    path: merged.path ?? '/api/enterprise/request/status/',
    param: merged.param ?? 'request_id',
    statusPath: merged.statusPath ?? 'status',
  }
}

/** The status request for a report: the id as a query parameter (GET) or a JSON body key (POST). */
function statusCall(sr: ResolvedStatusRequest, reportId: string): { path: string; req: UpstreamRequest } {
  let path = fillPath(sr.path, { id: reportId })
  const req: UpstreamRequest = { method: sr.method }
  if (sr.param) {
    if (sr.method === 'GET') path += (path.includes('?') ? '&' : '?') + `${encodeURIComponent(sr.param)}=${encodeURIComponent(reportId)}`
    else req.body = { [sr.param]: /^\d+$/.test(reportId) ? Number(reportId) : reportId }
  } else if (sr.method === 'POST') req.body = {}
  return { path, req }
}

/** A status table: `base` with the configured statusMap over it (each word also lower-cased, for mapStatus). */
function statusTable(sr: StatusRequest, base: Record<string, RunStatusT>): Record<string, RunStatusT> {
  const table = { ...base }
  for (const [k, v] of Object.entries(sr.statusMap ?? {})) { table[k] = v; table[k.toLowerCase()] = v }
  return table
}

/** The result of a completed report: a description of its download, not the file. */
export function describeResult(ctx: Ctx, reportId: string, statusAnswer: unknown): Record<string, unknown> {
  const fileType = ctx.workflow.config.fileType ?? ctx.connection.config.fileType ?? 'pdf'
  const id = /^\d+$/.test(reportId) ? Number(reportId) : reportId
  return {
    report_id: id,
    file_type: fileType,
    download: { method: 'POST', url: joinUrl(ctx.connection.baseUrl, '/api/assets/download_report/'), body: { report_id: id, file_type: fileType } },
    status: statusAnswer,
  }
}

/** The report a pushed body names (`report_id`, `request_id` or `data.report_id`). */
function namedReport(body: unknown): string | undefined {
  const b = isRecord(body) ? body : {}
  const named = b.report_id ?? b.request_id ?? getPath(b, 'data.report_id')
  return typeof named === 'string' || typeof named === 'number' ? String(named) : undefined
}

export const wokeloConnector = defineConnector({
  provider: 'wokelo',
  connectionConfig: ConnectionConfig,
  credentials: Credentials,
  workflowConfig: WorkflowConfig,
  // Vendor guidance: poll once a minute, for at most 90 minutes, then treat the job as timed out.
  defaultPollPolicy: { firstIntervalMs: 60_000, maxIntervalMs: 60_000, deadlineMs: 90 * 60_000 },

  async trigger(ctx, req) {
    const body = buildStartBody(ctx, req.input)
    const res = await wokeloRequest(ctx, '/api/workflow_manager/start/', { method: 'POST', body, headers: idempotencyHeaders(ctx, req.runId) }, `trigger:${req.runId}`)
    const reportId = idAt(res.body, 'report_id')
    if (reportId === undefined) throw badAnswer(res, 'Wokelo start answered without a report_id')
    return { upstreamId: String(reportId), status: 'queued', raw: res.body, state: { report_id: reportId } }
  },

  async poll(ctx, run) {
    const sr = statusRequest(ctx)
    const { path, req } = statusCall(sr, run.upstreamId)
    const res = await wokeloRequest(ctx, path, req, `poll:${run.runId}`)
    const table = statusTable(sr, DEFAULT_STATUS_MAP)
    const obs: Observation = { ...mapStatus(getPath(res.body, sr.statusPath), table), raw: res.body }
    const progress = normaliseProgress(sr.progressPath ? getPath(res.body, sr.progressPath) : undefined)
    if (progress !== undefined) obs.progress = progress
    if (obs.status === 'completed') {
      const result = describeResult(ctx, run.upstreamId, res.body)
      if (ctx.workflow.config.fetchResult ?? ctx.connection.config.fetchResult) {
        const r = await wokeloRequest(ctx, `/api/enterprise/request/result/?request_id=${encodeURIComponent(run.upstreamId)}`, {}, `poll:${run.runId}`)
        result.data = r.body
      }
      obs.result = result
    }
    if (obs.status === 'failed') {
      const fromPath = sr.errorPath ? getPath(res.body, sr.errorPath) : undefined
      const message = (typeof fromPath === 'string' && fromPath) || messageOf(res.body) || 'Wokelo report failed'
      obs.error = { code: 'upstream_run_failed', message, body: res.body }
    }
    return obs
  },

  async authHeaders(ctx) {
    return authHeader(ctx, await getToken(ctx, false))
  },

  matchTrigger(call) {
    if (!matchOkPost(call, /^\/api\/workflow_manager\/start\/?$/)) return null
    const reportId = idAt(call.responseBody, 'report_id')
    if (reportId === undefined) return null
    return { status: 'queued', raw: call.responseBody, state: { report_id: reportId }, upstreamId: String(reportId), upstreamWorkflowId: namedWorkflow(getPath(call.requestBody, 'workflow')) }
  },

  /**
   * A webhook Wokelo pushes (set up by its support staff; the body is not documented): read
   * defensively like a status answer. A body naming another report is ignored.
   */
  callbackUpstreamId: namedReport,

  parseCallback(ctx, run, body) {
    const b = isRecord(body) ? body : {}
    const named = namedReport(body)
    if (named !== undefined && named !== run.upstreamId) {
      return { raw: body, message: `callback for another Wokelo report (${String(named)})` }
    }
    const sr = statusRequest(ctx)
    const table = statusTable(sr, { ...DEFAULT_STATUS_MAP, success: 'completed', succeeded: 'completed', done: 'completed', error: 'failed' })
    const word = getPath(b, sr.statusPath) ?? b.status ?? b.state ?? getPath(b, 'data.status')
    const obs: Observation = { ...mapStatus(word, table), raw: body }
    const progress = normaliseProgress(b.progress)
    if (progress !== undefined) obs.progress = progress
    if (obs.status === 'completed') {
      const result = describeResult(ctx, run.upstreamId, body)
      if (b.result !== undefined) result.data = b.result
      obs.result = result
    }
    if (obs.status === 'failed') obs.error = { code: 'upstream_run_failed', message: messageOf(b) ?? 'Wokelo report failed', body }
    return obs
  },

  async testConnection(ctx) {
    try {
      if (canExchange(ctx) && !ctx.connection.credentials.token) await getToken(ctx, true)
      // No cheap documented read: ask the status of report 0. 400/404 still prove the token works.
      const sr = statusRequest(ctx)
      const token = await getToken(ctx, false)
      const { path, req } = statusCall(sr, '0')
      const res = await requestJson(ctx, joinUrl(ctx.connection.baseUrl, path), { ...req, headers: authHeader(ctx, token), accept: [400, 401, 403, 404] })
      if (res.status === 401 || res.status === 403) return { ok: false, message: `Wokelo refused the token (${res.status})` }
      return { ok: true, message: 'authenticated' }
    } catch (err) {
      return { ok: false, message: (err as Error).message }
    }
  },
})
