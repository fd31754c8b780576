import { getConnector } from '../connectors/index.ts'
import { newId } from '../core/crypto.ts'
import { pollPolicyOf } from '../core/binding.ts'
import type { RunStatus } from '../core/domain.ts'
import { renderTemplate } from '../core/template.ts'
import type { RunRow, WorkflowRow } from '../db/store.ts'
import type { Clock } from '../core/ports.ts'
import type { Store } from '../db/store.ts'
import { ApiError, conflict } from './errors.ts'
import type { RunHosts } from './hosts.ts'
import { assertVariablesMatch } from './variables.ts'

/** What a trigger asks for (the API's RunCreate body, validated by the route or made by a schedule). */
export interface RunCreateInput {
  variables: Record<string, unknown>
  runtime_variables: Record<string, unknown>
  tags: string[]
  /** Start later (ISO 8601). */
  scheduled_at?: string
}

/**
 * Create a run of a workflow: render its input from the variables (400 when one is missing),
 * persist it with run.created, and hand it to the run host. Shared by the trigger routes,
 * schedules and the proxy.
 */
export async function triggerRun(
  deps: { store: Store; clock: Clock; hosts: RunHosts }, workflow: WorkflowRow, body: RunCreateInput,
  origin: {
    /** Set by schedules: the occurrence this run stands for (unique per schedule among live runs). */
    occurrence?: { scheduleId: string; fireAt: number }
    /** Set by replays: the run this one repeats. */
    replayOf?: string
    /** The id reserved for this run by its Idempotency-Key (a second create of it is refused by the primary key). */
    id?: string
  } = {},
): Promise<RunRow> {
  const { occurrence, replayOf } = origin
  const { store, clock, hosts } = deps
  const connection = await store.catalog.getConnection(workflow.tenantId, workflow.connectionId)
  if (!connection) throw conflict('connection_missing', 'the workflow\'s connection is gone')
  const connector = getConnector(connection.provider)!
  // Typed inputs first: a trigger whose variables do not match is refused before anything else.
  assertVariablesMatch(workflow.variablesSchema, body.variables)
  const rendered = renderTemplate(workflow.inputTemplate, body.variables, body.runtime_variables)
  if (rendered.missing.length) {
    throw new ApiError(400, 'missing_variables', `the input template needs ${rendered.missing.join(', ')}`, rendered.missing.map((m) => ({ path: 'body.variables', message: `missing ${m}` })))
  }
  const policy = pollPolicyOf(workflow, connector)
  const now = clock.now()
  const scheduledAt = body.scheduled_at ? Date.parse(body.scheduled_at) : null
  const later = scheduledAt !== null && scheduledAt > now
  const status: RunStatus = later ? 'scheduled' : 'queued'
  const tags = [...new Set([...workflow.tags, ...body.tags])]
  const id = origin.id ?? newId('run')
  return hosts.create({
    id, tenantId: workflow.tenantId, workflowId: workflow.id, status, input: rendered.value, variables: body.variables,
    runtimeVariables: body.runtime_variables, tags, connectorState: {}, outputKeys: [], lastSeq: 1, transientErrors: 0, polls: 0,
    scheduledAt: later ? scheduledAt : null, deadlineAt: (later ? scheduledAt! : now) + policy.deadlineMs, nextTickAt: later ? scheduledAt : now,
    createdAt: now, updatedAt: now,
    ...(occurrence && { scheduleId: occurrence.scheduleId, scheduleFireAt: occurrence.fireAt }),
    ...(replayOf && { replayOf }),
  }, { type: 'run.created', data: {
    status, workflow_id: workflow.id, tags, variables: body.variables, runtime_variables: body.runtime_variables, scheduled_at: later ? new Date(scheduledAt!).toISOString() : null,
    ...(occurrence && { schedule_id: occurrence.scheduleId }),
    ...(replayOf && { replay_of: replayOf }),
  } })
}
