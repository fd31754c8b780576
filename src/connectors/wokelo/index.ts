import * as z from 'zod'
import { RunStatus, type RunStatus as RunStatusT } from '../../core/domain.ts'
import { getPath, joinUrl, requestJson, type UpstreamRequest, type UpstreamResponse } from '../request.ts'
import { fillPath, finalError, idempotencyHeaders, isRecord, mapStatus, matchOkPost, messageOf, normaliseProgress, rewrap } from '../shared.ts'
import { UpstreamError, type Connector, type ConnectorContext, type Observation } from '../types.ts'

/**
 * Wokelo: its API and its polling and retry guidance as runrelay uses them (described in docs/connectors.md).
 *
 * Auth: a JWT in `Authorization`. Either a static `token` credential, or `username`/`password`
 * exchanged at `POST /auth/token/` (JSON body {username, password}; the token is read from
 * `access`, `token` or `access_token`, or `tokenPath` — the exchange's answer is not documented).
 * The exchanged token is cached in ctx.cache under `wokelo:token:<connection id>`, renewed before
 * its JWT `exp`, and renewed once on a 401 (then the request is retried once). Wokelo's API
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

const DEFAULT_STATUS_MAP: Record<string, RunStatusT> = {
  pending: 'queued',
  processing: 'running',
  completed: 'completed',
  failed: 'failed',
}

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

const connectionConfig = z.object({
  authScheme: z.enum(['bearer', 'bare']).optional(),
  tokenPath: z.string().optional(),
  statusRequest: StatusRequest.optional(),
  fileType: FileType.optional(),
  fetchResult: z.boolean().optional(),
  sendIdempotencyKey: z.boolean().optional(),
}).passthrough()

const credentials = z.object({
  token: z.string().min(1).optional(),
  username: z.string().min(1).optional(),
  password: z.string().min(1).optional(),
}).refine((c) => !!c.token || (!!c.username && !!c.password), { message: 'either token, or username and password, is required' })

const workflowConfig = z.object({
  kind: z.enum(['company', 'industry']).optional(),
  statusRequest: StatusRequest.optional(),
  fileType: FileType.optional(),
  fetchResult: z.boolean().optional(),
  /** Defaults for the start body, under the run's input. */
  workbook_name: z.string().optional(),
  industry_research_topic: z.string().optional(),
}).passthrough()

const START_FIELDS = ['workbook_name', 'permalink', 'website', 'industry_research_topic', 'custom_files'] as const

// ---------------------------------------------------------------- auth

interface CachedToken { token: string; exp?: number }

const tokenKey = (ctx: ConnectorContext) => `wokelo:token:${ctx.connection.id}`

function jwtExp(token: string): number | undefined {
  const part = token.split('.')[1]
  if (!part) return undefined
  try {
    const json = atob(part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '='))
    const exp = (JSON.parse(json) as { exp?: unknown }).exp
    return typeof exp === 'number' ? exp * 1000 : undefined
  } catch {
    return undefined
  }
}

const canExchange = (ctx: ConnectorContext) => !!ctx.connection.credentials.username && !!ctx.connection.credentials.password

async function exchange(ctx: ConnectorContext): Promise<CachedToken> {
  const key = tokenKey(ctx)
  const pending = (async (): Promise<CachedToken> => {
    let res: UpstreamResponse
    try {
      res = await requestJson(ctx, joinUrl(ctx.connection.baseUrl, '/auth/token/'), {
        method: 'POST',
        body: { username: ctx.connection.credentials.username, password: ctx.connection.credentials.password },
      })
    } catch (err) {
      if (err instanceof UpstreamError && !err.transient) {
        throw rewrap(err, { code: 'upstream_auth_failed', message: `Wokelo rejected the username/password at /auth/token/ (${err.status})${messageOf(err.body) ? `: ${messageOf(err.body)}` : ''}` })
      }
      throw err
    }
    const path = typeof ctx.connection.config.tokenPath === 'string' ? ctx.connection.config.tokenPath : undefined
    const candidates = path ? [getPath(res.body, path)] : ['access', 'token', 'access_token', 'data.access', 'data.token'].map((p) => getPath(res.body, p))
    const token = candidates.find((t): t is string => typeof t === 'string' && t.length > 0)
    if (!token) throw finalError('upstream_auth_failed', 'Wokelo /auth/token/ answered without a token', { status: res.status })
    return { token, exp: jwtExp(token) }
  })()
  ctx.cache.set(key, pending)
  try {
    return await pending
  } catch (err) {
    if (ctx.cache.get(key) === pending) ctx.cache.delete(key)
    throw err
  }
}

async function getToken(ctx: ConnectorContext, renew: boolean): Promise<string> {
  const key = tokenKey(ctx)
  if (!renew) {
    const cached = ctx.cache.get(key) as Promise<CachedToken> | undefined
    if (cached) {
      try {
        const t = await cached
        if (t.exp === undefined || t.exp > ctx.now() + 30_000) return t.token
      } catch { /* fall through to a new exchange */ }
    }
    if (ctx.connection.credentials.token && !cached) return ctx.connection.credentials.token
  }
  if (!canExchange(ctx)) {
    if (ctx.connection.credentials.token) return ctx.connection.credentials.token
    throw finalError('upstream_auth_failed', 'no Wokelo token and no username/password to obtain one')
  }
  return (await exchange(ctx)).token
}

function authHeader(ctx: ConnectorContext, token: string): Record<string, string> {
  return { Authorization: ctx.connection.config.authScheme === 'bearer' ? `Bearer ${token}` : token }
}

/** requestJson with the JWT, one re-authentication on 401, and the vendor's retry rules applied. */
async function wokeloRequest<T = unknown>(ctx: ConnectorContext, path: string, req: UpstreamRequest, retryKey: string): Promise<UpstreamResponse<T>> {
  const url = joinUrl(ctx.connection.baseUrl, path)
  try {
    let token = await getToken(ctx, false)
    let res: UpstreamResponse<T>
    try {
      res = await requestJson<T>(ctx, url, { ...req, headers: { ...req.headers, ...authHeader(ctx, token) } })
    } catch (err) {
      if (!(err instanceof UpstreamError) || err.status !== 401 || !canExchange(ctx)) throw err
      token = await getToken(ctx, true)
      res = await requestJson<T>(ctx, url, { ...req, headers: { ...req.headers, ...authHeader(ctx, token) } })
    }
    ctx.cache.delete(rateLimitKey(ctx))
    ctx.cache.delete(serverErrorKey(retryKey))
    return res
  } catch (err) {
    throw applyRetryRules(ctx, err, retryKey)
  }
}

const RETRY_LIMITS: Record<number, number> = { 500: 3, 502: 5, 503: 5 }

/** ctx.cache counters: consecutive 429s on the connection, consecutive 5xx of one trigger or poll. */
const rateLimitKey = (ctx: ConnectorContext) => `wokelo:429:${ctx.connection.id}`
const serverErrorKey = (retryKey: string) => `wokelo:5xx:${retryKey}`

function bump(ctx: ConnectorContext, key: string): number {
  const n = ((ctx.cache.get(key) as number | undefined) ?? 0) + 1
  ctx.cache.set(key, n)
  return n
}

function applyRetryRules(ctx: ConnectorContext, err: unknown, retryKey: string): unknown {
  if (!(err instanceof UpstreamError) || err.code === 'upstream_auth_failed') return err
  if (err.status === 401) return rewrap(err, { code: 'upstream_unauthorized', message: `Wokelo refused the token (401)${canExchange(ctx) ? ' even after re-authenticating' : ''}` })
  if (err.status === 403) return rewrap(err, { code: 'upstream_forbidden' })
  if (err.status === 404) return rewrap(err, { code: 'upstream_not_found' })
  if (err.status === 429) {
    const n = bump(ctx, rateLimitKey(ctx))
    const backoff = Math.min(60_000, 1_000 * 2 ** (n - 1))
    return rewrap(err, { notBefore: err.notBefore ?? ctx.now() + backoff })
  }
  const limit = err.status !== undefined ? RETRY_LIMITS[err.status] : undefined
  if (limit !== undefined) {
    const key = serverErrorKey(retryKey)
    const n = bump(ctx, key)
    if (n > limit) {
      ctx.cache.delete(key)
      return rewrap(err, { transient: false, code: 'upstream_retries_exhausted', message: `${err.message} (Wokelo ${err.status} retried ${limit} times)` })
    }
  }
  return err
}

// ---------------------------------------------------------------- trigger / poll

function workflowKind(ctx: ConnectorContext): 'company' | 'industry' | undefined {
  const k = ctx.workflow.config.kind
  if (k === 'company' || k === 'industry') return k
  const id = ctx.workflow.upstreamWorkflowId.toLowerCase()
  if (id.startsWith('industry')) return 'industry'
  if (id.startsWith('comp')) return 'company'
  return undefined
}

export function buildStartBody(ctx: ConnectorContext, input: unknown): Record<string, unknown> {
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

function statusRequest(ctx: ConnectorContext): Required<Pick<StatusRequest, 'method' | 'path' | 'param' | 'statusPath'>> & StatusRequest {
  const conn = isRecord(ctx.connection.config.statusRequest) ? (ctx.connection.config.statusRequest as StatusRequest) : {}
  const wf = isRecord(ctx.workflow.config.statusRequest) ? (ctx.workflow.config.statusRequest as StatusRequest) : {}
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
function statusCall(sr: ReturnType<typeof statusRequest>, reportId: string): { path: string; req: UpstreamRequest } {
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

function option<T>(ctx: ConnectorContext, name: string): T | undefined {
  return (ctx.workflow.config[name] ?? ctx.connection.config[name]) as T | undefined
}

export function describeResult(ctx: ConnectorContext, reportId: string, statusAnswer: unknown): Record<string, unknown> {
  const fileType = option<string>(ctx, 'fileType') ?? 'pdf'
  const id = /^\d+$/.test(reportId) ? Number(reportId) : reportId
  return {
    report_id: id,
    file_type: fileType,
    download: { method: 'POST', url: joinUrl(ctx.connection.baseUrl, '/api/assets/download_report/'), body: { report_id: id, file_type: fileType } },
    status: statusAnswer,
  }
}

export const wokeloConnector: Connector = {
  provider: 'wokelo',
  connectionConfig,
  credentials,
  workflowConfig,
  // Vendor guidance: poll once a minute, for at most 90 minutes, then treat the job as timed out.
  defaultPollPolicy: { firstIntervalMs: 60_000, maxIntervalMs: 60_000, deadlineMs: 90 * 60_000 },

  async trigger(ctx, req) {
    const body = buildStartBody(ctx, req.input)
    const res = await wokeloRequest(ctx, '/api/workflow_manager/start/', { method: 'POST', body, headers: idempotencyHeaders(ctx, req.runId) }, `trigger:${req.runId}`)
    const reportId = getPath(res.body, 'report_id')
    if (typeof reportId !== 'number' && typeof reportId !== 'string') {
      throw finalError('upstream_bad_answer', 'Wokelo start answered without a report_id', { status: res.status, body: res.body })
    }
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
      if (option<boolean>(ctx, 'fetchResult')) {
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
    const reportId = getPath(call.responseBody, 'report_id')
    if (typeof reportId !== 'number' && typeof reportId !== 'string') return null
    const wf = getPath(call.requestBody, 'workflow')
    return { status: 'queued', raw: call.responseBody, state: { report_id: reportId }, upstreamId: String(reportId), upstreamWorkflowId: typeof wf === 'string' && wf ? wf : 'unknown' }
  },

  /**
   * A webhook Wokelo pushes (set up by its support staff; the body is not documented): read
   * defensively like a status answer. A body naming another report is ignored.
   */
  callbackUpstreamId(body) {
    const b = isRecord(body) ? body : {}
    const named = b.report_id ?? b.request_id ?? getPath(b, 'data.report_id')
    return typeof named === 'string' || typeof named === 'number' ? String(named) : undefined
  },

  parseCallback(ctx, run, body) {
    const b = isRecord(body) ? body : {}
    const named = wokeloConnector.callbackUpstreamId!(body)
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
}
