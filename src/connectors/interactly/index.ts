import * as z from 'zod'
import { defineConnector } from '../../core/define-connector.ts'
import type { RunStatus } from '../../core/domain.ts'
import { getPath } from '../request.ts'
import { apiKeyApi, badAnswer, fillPath, finalError, idempotencyHeaders, isRecord, mapStatus, matchOkPost, messageOf, namedWorkflow, VendorConnection } from '../shared.ts'
import type { ConnectorContext, Observation, RunRef } from '../types.ts'

/**
 * Interactly: its API as runrelay uses it (described in docs/connectors.md).
 *
 * - auth: `Authorization: Bearer <apiKey>`
 * - every action is `POST /workflows/v1/workflow-runs` with a `command`:
 *     start  → trigger (workflow_id, dynamic_variables ← TriggerRequest.variables,
 *              runtime_variables ← TriggerRequest.runtimeVariables, miscellaneous, thread_to_node_inputs)
 *     data   → the `input` command       pause → `pause`
 *     resume → `resume`                   stop  → `cancel`
 *   Each answers the run object {workflow_run: {_id, workflow_run: {status, input_output_pairs, comments}}}.
 * - ids are 24 hex chars (Mongo ObjectIds): a workflow or run id that is not is a final
 *   `invalid_upstream_id` error, raised before calling.
 * - status: `workflow_run.workflow_run.status`; the API reference shows only `not_started` (→ queued). The other
 *   words are not documented; the table maps the plausible ones and anything else keeps upstreamStatus
 *   with no status.
 * - outputs: every event of every input/output pair is an Observation output keyed
 *   `pair<i>.event<j>` (stable: pairs and events are only appended), plus `pair<i>.thread_outputs` for a
 *   pair's non-empty thread_to_node_outputs, so the watcher emits run.output events.
 * - poll: no read endpoint is documented. Default: `GET /workflows/v1/workflow-runs/{id}` (the
 *   REST sibling of the documented POST, answering the same run model). Configurable with
 *   `poll: {mode: 'get', path: '<template with {id}>'}` or `poll: {mode: 'data'}`, which sends a `data`
 *   command with no data and reads the run from its answer (note Interactly documents that each call appends an
 *   input/output pair, so that mode grows the run's history on every poll).
 */

const HEX24 = /^[0-9a-f]{24}$/i
const RUNS_PATH = '/workflows/v1/workflow-runs'

const RUN_STATUS: Record<string, RunStatus> = {
  not_started: 'queued', queued: 'queued', pending: 'queued', created: 'queued',
  started: 'running', running: 'running', in_progress: 'running', active: 'running', ongoing: 'running',
  paused: 'paused',
  completed: 'completed', complete: 'completed', finished: 'completed', done: 'completed', ended: 'completed', succeeded: 'completed', success: 'completed',
  failed: 'failed', error: 'failed', errored: 'failed',
  stopped: 'canceled', canceled: 'canceled', cancelled: 'canceled', aborted: 'canceled', terminated: 'canceled',
  timed_out: 'timed_out', timeout: 'timed_out', expired: 'timed_out',
}

const PollOption = z.object({
  mode: z.enum(['get', 'data']).optional(),
  path: z.string().min(1).optional(),
})

const ConnectionConfig = VendorConnection.extend({
  poll: PollOption.optional(),
})

const WorkflowConfig = z.object({
  poll: PollOption.optional(),
  /** Defaults sent with `start`, under the run's input. */
  miscellaneous: z.record(z.string(), z.unknown()).optional(),
  thread_to_node_inputs: z.record(z.string(), z.unknown()).optional(),
}).passthrough()

const RUN_INPUT_KEYS = ['dynamic_variables', 'runtime_variables', 'miscellaneous', 'thread_to_node_inputs'] as const

/**
 * A workflow's input template names the parts of the `start` body it fills: a flat template
 * such as `{"greeting": "Hello {{customer}}"}` has no place in that body, so it is refused
 * when the workflow is created rather than rendered and silently dropped. Each part is an
 * object, or a `{{variable}}` that renders to one.
 */
const RunPart = z.union([z.record(z.string(), z.unknown()), z.string()])
const inputTemplate = z.object(Object.fromEntries(RUN_INPUT_KEYS.map((k) => [k, RunPart.optional()]))).strict()

/** A call's context, its configs parsed by the schemas above (defineConnector). */
type Ctx = ConnectorContext<z.infer<typeof ConnectionConfig>, z.infer<typeof WorkflowConfig>>

const api = apiKeyApi('Authorization', 'Bearer ')

function checkId(kind: string, id: string): void {
  if (!HEX24.test(id)) throw finalError('invalid_upstream_id', `Interactly ${kind} must be 24 hex characters, got ${JSON.stringify(id)}`)
}

const obj = (v: unknown): Record<string, unknown> => (isRecord(v) ? v : {})

/** The `start` command's body: the template's parts, the run's variables, and the workflow's defaults under them. */
export function buildStartBody(ctx: Ctx, input: unknown, variables: Record<string, unknown>, runtimeVariables: Record<string, unknown>): Record<string, unknown> {
  // Without a template the input is a copy of the variables (the default mapping): they go to
  // dynamic_variables below, so only a template's input is read and checked.
  const inp = ctx.workflow.hasInputTemplate === false ? {} : obj(input)
  // Workflows created before templates were checked: refuse rather than drop the input.
  const stray = Object.keys(inp).filter((k) => !(RUN_INPUT_KEYS as readonly string[]).includes(k))
  if (stray.length > 0) throw finalError('invalid_input', `Interactly's start body has no place for ${stray.join(', ')}: put values under ${RUN_INPUT_KEYS.join(', ')}`)
  const cfg = ctx.workflow.config
  return {
    command: 'start',
    workflow_id: ctx.workflow.upstreamWorkflowId,
    dynamic_variables: { ...obj(inp.dynamic_variables), ...variables },
    runtime_variables: { ...obj(inp.runtime_variables), ...runtimeVariables },
    miscellaneous: { ...cfg.miscellaneous, ...obj(inp.miscellaneous) },
    thread_to_node_inputs: { ...cfg.thread_to_node_inputs, ...obj(inp.thread_to_node_inputs) },
  }
}

/** The run document: `workflow_run` (with `_id`) and its inner `workflow_run` (status, pairs). */
function parts(body: unknown): { outer: Record<string, unknown>; inner: Record<string, unknown> } {
  const outer = obj(getPath(body, 'workflow_run'))
  const inner = isRecord(outer.workflow_run) ? outer.workflow_run : outer
  return { outer, inner }
}

function findErrorMessage(inner: Record<string, unknown>, pairs: unknown[]): string | undefined {
  const direct = messageOf({ error: inner.error, error_message: inner.error_message, reason: inner.reason })
  if (direct) return direct
  for (let i = pairs.length - 1; i >= 0; i--) {
    const events = getPath(pairs[i], 'run_output.events')
    if (!Array.isArray(events)) continue
    for (let j = events.length - 1; j >= 0; j--) {
      const e = events[j]
      if (isRecord(e) && (e.error !== undefined || /error|fail/i.test(String(e.type ?? e.event ?? '')))) {
        const m = messageOf(e)
        if (m) return m
      }
    }
  }
  return undefined
}

/** Map a run answer to an Observation (status, outputs from input/output pairs, result, error). */
export function observeRun(body: unknown): Observation {
  const { inner } = parts(body)
  const obs: Observation = { ...mapStatus(inner.status, RUN_STATUS), raw: body }
  const pairs = Array.isArray(inner.input_output_pairs) ? inner.input_output_pairs : []
  const outputs: NonNullable<Observation['outputs']> = []
  pairs.forEach((pair, i) => {
    const command = getPath(pair, 'run_input.command')
    const events = getPath(pair, 'run_output.events')
    if (Array.isArray(events)) {
      events.forEach((event, j) => outputs.push({ key: `pair${i}.event${j}`, data: { pair: i, index: j, command, event } }))
    }
    const threads = getPath(pair, 'run_output.thread_to_node_outputs')
    if (isRecord(threads) && Object.keys(threads).length > 0) outputs.push({ key: `pair${i}.thread_outputs`, data: { pair: i, command, thread_to_node_outputs: threads } })
  })
  if (outputs.length > 0) obs.outputs = outputs
  const last = pairs.length > 0 ? getPath(pairs[pairs.length - 1], 'run_output') : undefined
  if (obs.status === 'completed') obs.result = { workflow_run_id: parts(body).outer._id, output: last ?? null }
  if (obs.status === 'failed') obs.error = { code: 'upstream_run_failed', message: findErrorMessage(inner, pairs) ?? 'Interactly workflow run failed', body }
  return obs
}

async function post(ctx: Ctx, body: Record<string, unknown>, headers: Record<string, string> = {}) {
  return api.call(ctx, RUNS_PATH, { method: 'POST', headers, body })
}

function runCommand(command: 'data' | 'pause' | 'resume' | 'stop', payloadRequired: boolean) {
  return async (ctx: Ctx, run: RunRef, payload: unknown): Promise<Observation> => {
    checkId('workflow_run_id', run.upstreamId)
    const body: Record<string, unknown> = { command, workflow_run_id: run.upstreamId }
    if (HEX24.test(ctx.workflow.upstreamWorkflowId)) body.workflow_id = ctx.workflow.upstreamWorkflowId
    const p = obj(payload)
    const known = RUN_INPUT_KEYS.filter((k) => p[k] !== undefined)
    for (const k of known) {
      if (!isRecord(p[k])) throw finalError('invalid_input', `${k} must be an object`)
      body[k] = p[k]
    }
    if (payloadRequired && known.length === 0) {
      throw finalError('invalid_input', `Interactly input needs an object with ${RUN_INPUT_KEYS.join(', ')} (e.g. {"thread_to_node_inputs": {...}})`)
    }
    const res = await post(ctx, body)
    return observeRun(res.body)
  }
}

function pollOption(ctx: Ctx): { mode: 'get' | 'data'; path: string } {
  const o = { ...ctx.connection.config.poll, ...ctx.workflow.config.poll }
  return { mode: o.mode === 'data' ? 'data' : 'get', path: o.path || `${RUNS_PATH}/{id}` }
}

export const interactlyConnector = defineConnector({
  provider: 'interactly',
  connectionConfig: ConnectionConfig,
  ...api.auth,
  workflowConfig: WorkflowConfig,
  inputTemplate,
  defaultPollPolicy: { firstIntervalMs: 2_000, maxIntervalMs: 30_000, deadlineMs: 2 * 3_600_000 },

  async trigger(ctx, req) {
    checkId('workflow_id', ctx.workflow.upstreamWorkflowId)
    const res = await post(ctx, buildStartBody(ctx, req.input, req.variables, req.runtimeVariables), idempotencyHeaders(ctx, req.runId))
    const id = parts(res.body).outer._id
    if (typeof id !== 'string' || !id) throw badAnswer(res, 'Interactly answered without workflow_run._id')
    return { ...observeRun(res.body), upstreamId: id }
  },

  async poll(ctx, run) {
    checkId('workflow_run_id', run.upstreamId)
    const opt = pollOption(ctx)
    // A `data` command without data: the run's answer (and one more input/output pair).
    if (opt.mode === 'data') return runCommand('data', false)(ctx, run, undefined)
    const res = await api.call(ctx, fillPath(opt.path, { id: run.upstreamId }))
    return observeRun(res.body)
  },

  matchTrigger(call) {
    if (!matchOkPost(call, /^\/workflows\/v1\/workflow-runs\/?$/)) return null
    const command = getPath(call.requestBody, 'command') ?? 'start'
    if (command !== 'start') return null
    const { outer, inner } = parts(call.responseBody)
    if (typeof outer._id !== 'string' || !outer._id) return null
    const wf = getPath(call.requestBody, 'workflow_id') ?? inner.workflow_id
    return { ...observeRun(call.responseBody), upstreamId: outer._id, upstreamWorkflowId: namedWorkflow(wf) }
  },

  commands: {
    input: runCommand('data', true),
    pause: runCommand('pause', false),
    resume: runCommand('resume', false),
    cancel: runCommand('stop', false),
  },
})
