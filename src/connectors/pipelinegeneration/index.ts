import * as z from 'zod'
import { defineConnector } from '../../core/define-connector.ts'
import type { RunStatus } from '../../core/domain.ts'
import { getPath } from '../request.ts'
import { apiKeyApi, badAnswer, finalError, firstArray, idAt, idempotencyHeaders, isRecord, mapStatus, matchOkPost, messageOf, namedWorkflow, testByListing, upstreamWorkflows, upstreamWorkflowId, VendorConnection } from '../shared.ts'
import type { ConnectorContext, Observation, UpstreamWorkflow } from '../types.ts'

/**
 * PipelineGeneration (https://api.pipelinegeneration.ai); its API is described in docs/connectors.md.
 *
 * - auth: `x-api-key`
 * - `GET /v1/workflows` lists workflows (also used as the connection test)
 * - `POST /v1/workflows/trigger` {workflow_id, company_id?, contact_id?, parameters?} → 202 {execution_id, status: queued}
 * - `GET /v1/workflows/executions/{execution_id}` → {status: queued|running|completed|failed, started_at, completed_at, result}
 * - errors: 400 `{"error": "..."}` (final, message kept by requestJson); 5xx/429 transient.
 *
 * No cancel/pause/resume endpoint is documented, so `commands` is absent.
 */

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** The execution's status words are runrelay's own. */
const STATUS: Record<string, RunStatus> = { queued: 'queued', running: 'running', completed: 'completed', failed: 'failed' }

const WorkflowConfig = z.object({
  /** Defaults merged under the run's input. */
  company_id: z.string().regex(UUID, 'company_id must be a UUID').optional(),
  contact_id: z.string().regex(UUID, 'contact_id must be a UUID').optional(),
  parameters: z.record(z.string(), z.unknown()).optional(),
}).passthrough()
type WorkflowConfig = z.infer<typeof WorkflowConfig>

/** A call's context, its configs parsed by the schemas (defineConnector). */
type Ctx = ConnectorContext<z.infer<typeof VendorConnection>, WorkflowConfig>

const api = apiKeyApi('x-api-key')

/**
 * Build the trigger body. The run's input may carry `company_id`, `contact_id` and `parameters`;
 * any other top-level input key is treated as a parameter too (so a flat input works).
 */
export function buildTriggerBody(workflowId: string, config: WorkflowConfig, input: unknown): Record<string, unknown> {
  const inp = isRecord(input) ? input : {}
  const { company_id, contact_id, parameters, ...rest } = inp
  const companyId = company_id ?? config.company_id
  const contactId = contact_id ?? config.contact_id
  for (const [name, v] of [['company_id', companyId], ['contact_id', contactId]] as const) {
    if (v === undefined || v === null || v === '') continue
    if (typeof v !== 'string' || !UUID.test(v)) throw finalError('invalid_input', `${name} must be a UUID, got ${JSON.stringify(v)}`)
  }
  if (parameters !== undefined && !isRecord(parameters)) throw finalError('invalid_input', 'parameters must be an object')
  const params = { ...config.parameters, ...rest, ...(parameters ?? {}) }
  const body: Record<string, unknown> = { workflow_id: workflowId }
  if (companyId) body.company_id = companyId
  if (contactId) body.contact_id = contactId
  if (Object.keys(params).length > 0) body.parameters = params
  return body
}

/** Map an execution object (trigger or Get Execution answer) to an Observation. */
export function observeExecution(body: unknown): Observation {
  const b = isRecord(body) ? body : {}
  const obs: Observation = { ...mapStatus(b.status, STATUS), raw: body }
  if (obs.status === 'completed') obs.result = b.result ?? null
  if (obs.status === 'failed') {
    const message = messageOf(b) ?? messageOf(b.result) ?? 'execution failed'
    obs.error = { code: 'upstream_run_failed', message, body }
  }
  const summary = getPath(b, 'result.summary')
  if (typeof summary === 'string') obs.message = summary
  return obs
}

/** The trigger answer (ours or proxied): a 202 without a status word still means the execution was accepted and is waiting. */
function observeAccepted(body: unknown): Observation {
  const obs = observeExecution(body)
  if (!obs.status && obs.upstreamStatus === undefined) obs.status = 'queued'
  return obs
}

async function listWorkflows(ctx: Ctx): Promise<UpstreamWorkflow[]> {
  const res = await api.call(ctx, '/v1/workflows')
  return upstreamWorkflows(firstArray(res.body, ['', 'data']), ['id'], ['name'])
}

export const pipelinegenerationConnector = defineConnector({
  provider: 'pipelinegeneration',
  connectionConfig: VendorConnection,
  ...api.auth,
  workflowConfig: WorkflowConfig,
  // "Workflow executions may take up to 2 minutes": poll every few seconds, give up after 10.
  defaultPollPolicy: { firstIntervalMs: 3_000, maxIntervalMs: 15_000, deadlineMs: 10 * 60_000 },

  async trigger(ctx, req) {
    const workflowId = upstreamWorkflowId(ctx, 'workflow_id is required')
    const body = buildTriggerBody(workflowId, ctx.workflow.config, req.input)
    const res = await api.call(ctx, '/v1/workflows/trigger', { method: 'POST', headers: idempotencyHeaders(ctx, req.runId), body })
    const executionId = idAt(res.body, 'execution_id')
    if (executionId === undefined) throw badAnswer(res, 'trigger answer has no execution_id')
    return { ...observeAccepted(res.body), upstreamId: String(executionId) }
  },

  async poll(ctx, run) {
    const res = await api.call(ctx, `/v1/workflows/executions/${encodeURIComponent(run.upstreamId)}`)
    return observeExecution(res.body)
  },

  listWorkflows,

  async testConnection(ctx) {
    return testByListing(() => listWorkflows(ctx), 'authenticated')
  },

  matchTrigger(call) {
    if (!matchOkPost(call, /^\/v1\/workflows\/trigger\/?$/)) return null
    const executionId = idAt(call.responseBody, 'execution_id')
    if (executionId === undefined) return null
    const wf = getPath(call.responseBody, 'workflow_id') ?? getPath(call.requestBody, 'workflow_id')
    return { ...observeAccepted(call.responseBody), upstreamId: String(executionId), upstreamWorkflowId: namedWorkflow(wf) }
  },
})
