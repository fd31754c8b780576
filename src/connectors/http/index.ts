import * as z from 'zod'
import { RunStatus } from '../../core/domain.ts'
import { renderHeaderValue, renderPath, renderTemplate, TemplateValueError } from '../../core/template.ts'
import { confineUrl, getPath, joinUrl, requestJson } from '../request.ts'
import { finalError } from '../shared.ts'
import { defineConnector } from '../../core/define-connector.ts'
import type { ConnectorContext, Observation } from '../types.ts'

/**
 * The declarative connector: enough to wire most poll-only HTTP APIs without code. The
 * workflow says how to trigger (request template), where the upstream id is in the answer,
 * how to ask for status, how to map the upstream's status words, and where the result is.
 */
const Auth = z.discriminatedUnion('type', [
  z.object({ type: z.literal('none') }),
  /** `header: value` where value is `${scheme} ${credentials.token}` (scheme optional). */
  z.object({ type: z.literal('header'), header: z.string().min(1).default('Authorization'), scheme: z.string().optional() }),
  z.object({ type: z.literal('query'), param: z.string().min(1) }),
])

const ConnectionConfig = z.object({
  auth: Auth.default({ type: 'none' }),
  /** Extra headers on every request (not secret). */
  headers: z.record(z.string(), z.string()).default({}),
  /** The upstream answers a repeated trigger with the same Idempotency-Key with the job it made (then a trigger with a lost answer is resent). */
  honoursIdempotencyKey: z.boolean().optional(),
})

const RequestTemplate = z.object({
  method: z.enum(['GET', 'POST', 'PUT', 'PATCH', 'DELETE']).optional(),
  /**
   * Path relative to the connection's base URL; `{{upstream_id}}`, `{{workflow_id}}`, `{{run_id}}` and run
   * variables are filled in, each percent-encoded (a value is one segment or one query value, never syntax).
   */
  path: z.string().min(1),
  /** JSON body template; `"{{input}}"` is the run's rendered input, `{{callback_url}}` its callback URL. Defaults to the input. */
  body: z.unknown().optional(),
  /** Header values; placeholders are filled in as text, and a value with a line break or a control character is refused. */
  headers: z.record(z.string(), z.string()).optional(),
})

const StatusMap = z.record(z.string(), RunStatus)

const WorkflowConfig = z.object({
  trigger: RequestTemplate,
  /** Dotted path of the upstream id in the trigger answer, e.g. `data.execution_id`. */
  upstreamIdPath: z.string().min(1).default('id'),
  /** How to ask for the status; absent means the upstream pushes to the callback URL. */
  status: RequestTemplate.extend({ method: z.enum(['GET', 'POST']).optional() }).optional(),
  statusPath: z.string().default('status'),
  /** Upstream status word (case-insensitive) → runrelay status. */
  statusMap: StatusMap.default({}),
  progressPath: z.string().optional(),
  /** When the upstream's progress is a percentage (0..100) rather than a fraction. */
  progressScale: z.number().positive().default(1),
  messagePath: z.string().optional(),
  resultPath: z.string().optional(),
  errorPath: z.string().optional(),
  cancel: RequestTemplate.optional(),
  /** As the connection's option, for this workflow's trigger only. */
  honoursIdempotencyKey: z.boolean().optional(),
})
type WorkflowConfig = z.infer<typeof WorkflowConfig>

/** Common status words, used when the workflow's map does not name a word. */
const DEFAULT_STATUS_WORDS: Record<string, RunStatus> = {
  pending: 'queued', queued: 'queued', waiting: 'queued', scheduled: 'queued', created: 'queued', accepted: 'queued', not_started: 'queued',
  running: 'running', processing: 'running', in_progress: 'running', started: 'running', active: 'running',
  paused: 'paused', suspended: 'paused',
  completed: 'completed', complete: 'completed', succeeded: 'completed', success: 'completed', done: 'completed', finished: 'completed',
  failed: 'failed', failure: 'failed', error: 'failed', errored: 'failed',
  canceled: 'canceled', cancelled: 'canceled', stopped: 'canceled', aborted: 'canceled',
  timed_out: 'timed_out', timeout: 'timed_out', expired: 'timed_out',
}

type ConnectionConfig = z.infer<typeof ConnectionConfig>
/** A call's context, its configs parsed by the schemas above (defineConnector). */
type Ctx = ConnectorContext<ConnectionConfig, WorkflowConfig>

function vars(ctx: Ctx, runId: string, extra: Record<string, unknown>): Record<string, unknown> {
  return { ...extra, run_id: runId, workflow_id: ctx.workflow.upstreamWorkflowId, callback_url: ctx.callbackUrl }
}

async function send(ctx: Ctx, tpl: z.infer<typeof RequestTemplate>, variables: Record<string, unknown>, defaultBody: unknown) {
  const conn = ctx.connection.config
  // Every value is encoded for where it lands; what cannot be placed there fails the run before anything is sent.
  let path: string
  const headers: Record<string, string> = { ...conn.headers }
  try {
    const rendered = renderPath(tpl.path, variables)
    if (rendered.missing.length) throw finalError('template_variable_missing', `path template needs ${rendered.missing.join(', ')}`)
    path = rendered.value
    for (const [name, value] of Object.entries(tpl.headers ?? {})) {
      const h = renderHeaderValue(name, value, variables)
      if (h.missing.length) throw finalError('template_variable_missing', `header ${name} needs ${h.missing.join(', ')}`)
      headers[name] = h.value
    }
  } catch (err) {
    throw err instanceof TemplateValueError ? finalError(err.code, err.message) : err
  }
  // Confined before it is parsed (parsing drops `.` and `..`): a template, a value or an upstream id cannot walk the path.
  const url = new URL(confineUrl(ctx.connection.baseUrl, joinUrl(ctx.connection.baseUrl, path)))
  const token = ctx.connection.credentials.token ?? ''
  if (conn.auth.type === 'header') headers[conn.auth.header] = conn.auth.scheme ? `${conn.auth.scheme} ${token}` : token
  if (conn.auth.type === 'query') url.searchParams.set(conn.auth.param, token)
  const method = tpl.method ?? (tpl.body !== undefined || defaultBody !== undefined ? 'POST' : 'GET')
  let body: unknown
  if (method !== 'GET' && method !== 'DELETE') {
    // JSON position: values keep their type and the body is serialised whole, so a value is always one JSON value.
    body = tpl.body === undefined ? defaultBody : renderTemplate(tpl.body, variables, {}).value
  }
  return requestJson(ctx, url.toString(), { method, headers, body })
}

function mapAnswer(wf: WorkflowConfig, answer: unknown): Observation {
  const word = getPath(answer, wf.statusPath)
  const upstreamStatus = word === undefined || word === null ? undefined : String(word)
  let status: RunStatus | undefined
  if (upstreamStatus !== undefined) {
    const lower = upstreamStatus.toLowerCase()
    const mapped = Object.entries(wf.statusMap).find(([k]) => k.toLowerCase() === lower)?.[1]
    status = mapped ?? DEFAULT_STATUS_WORDS[lower]
  }
  const progressRaw = wf.progressPath ? getPath(answer, wf.progressPath) : undefined
  const progress = typeof progressRaw === 'number' ? progressRaw / wf.progressScale : undefined
  const message = wf.messagePath ? getPath(answer, wf.messagePath) : undefined
  const obs: Observation = { status, upstreamStatus, progress, message: typeof message === 'string' ? message : undefined, raw: answer }
  if (status === 'completed') obs.result = wf.resultPath ? getPath(answer, wf.resultPath) : answer
  if (status === 'failed' || status === 'canceled' || status === 'timed_out') {
    const e = wf.errorPath ? getPath(answer, wf.errorPath) : undefined
    obs.error = { code: `upstream_${status}`, message: typeof e === 'string' ? e : e ? JSON.stringify(e) : `upstream reported ${upstreamStatus}` }
  }
  return obs
}

export const httpConnector = defineConnector({
  provider: 'http',
  connectionConfig: ConnectionConfig,
  credentials: z.object({ token: z.string().optional() }).catchall(z.string()) as z.ZodType<Record<string, string>>,
  workflowConfig: WorkflowConfig,
  // Any HTTP API: whether it dedupes is the user's to say, per connection or per workflow.
  honoursIdempotencyKey: (ctx) => ctx.connection.config.honoursIdempotencyKey === true || ctx.workflow.config.honoursIdempotencyKey === true,

  async trigger(ctx, req) {
    const wf = ctx.workflow.config
    const res = await send(ctx, wf.trigger, vars(ctx, req.runId, { ...req.variables, input: req.input }), req.input)
    const id = getPath(res.body, wf.upstreamIdPath)
    if (id === undefined || id === null || id === '') {
      throw finalError('upstream_id_missing', `trigger answer has no upstream id at "${wf.upstreamIdPath}"`, { status: res.status, body: res.body })
    }
    const obs = mapAnswer(wf, res.body)
    // Without a status request the trigger answer is all there is; a status word in it counts.
    return { ...obs, upstreamId: String(id) }
  },

  async poll(ctx, run) {
    const wf = ctx.workflow.config
    if (!wf.status) return { raw: undefined }
    const res = await send(ctx, wf.status, vars(ctx, run.runId, { upstream_id: run.upstreamId }), undefined)
    return mapAnswer(wf, res.body)
  },

  commands: {
    async cancel(ctx, run) {
      const wf = ctx.workflow.config
      if (!wf.cancel) return { status: 'canceled' }
      await send(ctx, wf.cancel, vars(ctx, run.runId, { upstream_id: run.upstreamId }), undefined)
      return { status: 'canceled' }
    },
  },

  async testConnection(ctx) {
    const res = await ctx.fetch(ctx.connection.baseUrl, { method: 'GET' })
    // Only the status matters: the body is not read (nor buffered).
    await res.body?.cancel().catch(() => {})
    return { ok: res.status < 500, message: `base URL answered ${res.status}` }
  },

  parseCallback(ctx, _run, body) {
    return mapAnswer(ctx.workflow.config, body)
  },
})
