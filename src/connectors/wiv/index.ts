import * as z from 'zod'
import { defineConnector } from '../../core/define-connector.ts'
import type { RunStatus } from '../../core/domain.ts'
import { getPath } from '../request.ts'
import { apiKeyApi, badAnswer, idAt, idempotencyHeaders, isRecord, mapStatus, matchOkPost, messageOf, normaliseProgress, upstreamWorkflowId, VendorConnection } from '../shared.ts'
import type { ConnectorContext, Observation } from '../types.ts'

/**
 * Wiv: its API as runrelay uses it (described in docs/connectors.md).
 *
 * - auth: `X-API-KEY`
 * - `POST /workflows/{workflow_id}/run` {payload} → 200 {data: {event_type: WORKFLOW_TRIGGER,
 *   execution_id, payload, run_by, tenant_id, timestamp (UTC, no zone), trigger_id, trigger_type, workflow_id}}
 * - no status endpoint: there is no `poll`. Completion comes from the run's signed callback URL,
 *   which is put into the payload under `callbackKey` (default `runrelay_callback_url`) so the
 *   Wiv workflow's last step can POST to it (parseCallback), or, with `completeOnAccept: true`
 *   in the workflow config, the accepted trigger is itself the completion.
 * - run_by, tenant_id, trigger_type, trigger_id and the timestamp are kept in the run's state and in
 *   the result.
 *
 * The callback body is whatever the Wiv workflow sends; we read it defensively:
 *   {status?: 'completed'|'failed'|..., result?|output?|data?, error?, message?, progress?}
 * A callback without a status word is taken as completion (it is the workflow's last step), unless
 * it carries an `error`, which makes it a failure.
 *
 * No list, cancel, pause or resume endpoint is documented: `listWorkflows`, `commands` and
 * `testConnection` are absent (the only documented call would start a workflow).
 */

/** The payload key carrying the run's callback URL when neither the workflow nor the connection names one. */
export const DEFAULT_CALLBACK_KEY = 'runrelay_callback_url'

const CALLBACK_STATUS: Record<string, RunStatus> = {
  queued: 'queued', pending: 'queued', accepted: 'queued',
  running: 'running', started: 'running', in_progress: 'running', processing: 'running',
  paused: 'paused',
  completed: 'completed', complete: 'completed', success: 'completed', succeeded: 'completed', successful: 'completed', done: 'completed', finished: 'completed', ok: 'completed',
  failed: 'failed', failure: 'failed', error: 'failed', errored: 'failed',
  canceled: 'canceled', cancelled: 'canceled', aborted: 'canceled', stopped: 'canceled',
  timed_out: 'timed_out', timeout: 'timed_out',
}

const ConnectionConfig = VendorConnection.extend({
  callbackKey: z.string().min(1).optional(),
})

const WorkflowConfig = z.object({
  /** Count the accepted trigger as the run's completion (workflows that never call back). */
  completeOnAccept: z.boolean().optional(),
  /** Payload key carrying the run's callback URL; overrides the connection's. `false` disables. */
  callbackKey: z.union([z.string().min(1), z.literal(false)]).optional(),
}).passthrough()

/** What a run keeps: the trigger's facts, for the result (read leniently: a stored value of another shape is none). */
const RunState = z.object({
  trigger: z.record(z.string(), z.unknown()).optional().catch(undefined),
}).passthrough()

/** A call's context, its configs parsed by the schemas above (defineConnector). */
type Ctx = ConnectorContext<z.infer<typeof ConnectionConfig>, z.infer<typeof WorkflowConfig>>

const TRIGGER_FIELDS = ['run_by', 'tenant_id', 'trigger_type', 'trigger_id', 'event_type', 'workflow_id'] as const

const api = apiKeyApi('X-API-KEY')

/** The run answer's `data` (trigger facts kept in state and result), or undefined without an execution_id. */
function accepted(body: unknown): { executionId: string; d: Record<string, unknown>; trigger: Record<string, unknown>; upstreamStatus: string } | undefined {
  const data = getPath(body, 'data')
  const executionId = idAt(data, 'execution_id')
  if (executionId === undefined) return undefined
  const d = isRecord(data) ? data : {}
  const trigger: Record<string, unknown> = { execution_id: String(executionId) }
  for (const f of TRIGGER_FIELDS) if (d[f] !== undefined) trigger[f] = d[f]
  const ts = wivTimestamp(d.timestamp)
  if (ts) trigger.timestamp = ts
  return { executionId: String(executionId), d, trigger, upstreamStatus: typeof d.event_type === 'string' ? d.event_type : 'WORKFLOW_TRIGGER' }
}

/** Wiv answers `2025-05-22 20:59:07.014093` (UTC without a zone): make it ISO 8601 with Z. */
export function wivTimestamp(ts: unknown): string | undefined {
  if (typeof ts !== 'string') return undefined
  const m = /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(\.\d+)?$/.exec(ts.trim())
  if (!m) return ts
  return `${m[1]}T${m[2]}${m[3] ? m[3].slice(0, 4) : ''}Z`
}

function callbackKey(ctx: Ctx): string | undefined {
  const wf = ctx.workflow.config.callbackKey
  if (wf === false) return undefined
  if (wf) return wf
  return ctx.connection.config.callbackKey || DEFAULT_CALLBACK_KEY
}

/** The trigger's payload: the run's input (an object, or wrapped as `input`), with the callback URL under callbackKey. */
export function buildPayload(ctx: Ctx, input: unknown): Record<string, unknown> {
  const payload: Record<string, unknown> = isRecord(input) ? { ...input } : input === undefined || input === null ? {} : { input }
  const key = callbackKey(ctx)
  if (key && ctx.callbackUrl) payload[key] = ctx.callbackUrl
  return payload
}

export const wivConnector = defineConnector({
  provider: 'wiv',
  connectionConfig: ConnectionConfig,
  ...api.auth,
  workflowConfig: WorkflowConfig,
  runState: RunState,
  // No poll: the policy's deadline bounds how long a run waits for its callback.
  defaultPollPolicy: { deadlineMs: 6 * 3_600_000 },

  async trigger(ctx, req) {
    const id = upstreamWorkflowId(ctx, 'the Wiv workflow_id is required')
    const res = await api.call(ctx, `/workflows/${encodeURIComponent(id)}/run`, {
      method: 'POST',
      headers: idempotencyHeaders(ctx, req.runId),
      body: { payload: buildPayload(ctx, req.input) },
    })
    const a = accepted(res.body)
    if (!a) throw badAnswer(res, 'Wiv answered without data.execution_id')
    const { d, trigger } = a
    const complete = ctx.workflow.config.completeOnAccept === true
    const obs: Observation = {
      // Accepted: Wiv has started the workflow; nothing more is known until the callback.
      status: complete ? 'completed' : 'running',
      upstreamStatus: a.upstreamStatus,
      raw: res.body,
      state: { trigger },
    }
    if (complete) obs.result = { ...trigger, payload: d.payload }
    return { ...obs, upstreamId: a.executionId }
  },

  matchTrigger(call) {
    const m = matchOkPost(call, /^\/workflows\/([^/]+)\/run\/?$/)
    if (!m) return null
    const a = accepted(call.responseBody)
    if (!a) return null
    return {
      status: 'running', upstreamStatus: a.upstreamStatus, raw: call.responseBody,
      state: { trigger: a.trigger }, upstreamId: a.executionId, upstreamWorkflowId: decodeURIComponent(m[1]!),
    }
  },

  parseCallback(_ctx, run, body) {
    const b = isRecord(body) ? body : {}
    const trigger = run.state.trigger ?? {}
    const word = b.status ?? b.state
    const mapped = mapStatus(typeof word === 'string' ? word : undefined, CALLBACK_STATUS)
    const obs: Observation = { ...mapped, raw: body }
    const hasError = b.error !== undefined && b.error !== null && b.error !== false && b.error !== ''
    if (mapped.upstreamStatus === undefined) {
      obs.status = hasError ? 'failed' : 'completed'
      obs.upstreamStatus = hasError ? 'callback_error' : 'callback'
    }
    const progress = normaliseProgress(b.progress)
    if (progress !== undefined) obs.progress = progress
    if (typeof b.message === 'string') obs.message = b.message
    if (obs.status === 'completed') {
      const out = b.result ?? b.output ?? b.outputs ?? b.data
      obs.result = { ...trigger, result: out === undefined ? withoutControl(b) : out }
    }
    if (obs.status === 'failed') {
      const message = (typeof b.error === 'string' && b.error) || messageOf(b.error) || messageOf(b) || 'Wiv workflow reported a failure'
      obs.error = { code: 'upstream_run_failed', message, body }
    }
    return obs
  },
})

function withoutControl(b: Record<string, unknown>): Record<string, unknown> {
  const { status: _s, state: _st, progress: _p, message: _m, ...rest } = b
  return rest
}
