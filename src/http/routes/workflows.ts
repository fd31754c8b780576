import type { Hono } from 'hono'
import { getConnector } from '../../connectors/index.ts'
import { newId } from '../../core/crypto.ts'
import { DEFAULT_POLL_POLICY, PollPolicy } from '../../core/domain.ts'
import type { StoredPollPolicy } from '../../db/schema.ts'
import type { AppDeps, RouteContext } from '../context.ts'
import { cursorOf, valid } from '../context.ts'
import { tenantOf, type AuthEnv } from '../auth.ts'
import { ApiError, conflict, found, validationError } from '../errors.ts'
import { Deleted, IdParam, list, Pagination, PolicyFromInput, Workflow, WorkflowCreate, WorkflowUpdate } from '../schemas.ts'
import { workflowBody } from '../serialize.ts'

/** Workflows: a named binding of a connection, an upstream workflow, an input template and a poll policy. */
export function registerWorkflowRoutes(app: Hono<AuthEnv>, deps: AppDeps, { auth, documented }: RouteContext): void {
  const { store, clock } = deps

  const checked = async (tenantId: string, connectionId: string, config: Record<string, unknown>, policy: StoredPollPolicy, inputTemplate: unknown) => {
    const connection = await store.catalog.getConnection(tenantId, connectionId)
    if (!connection) throw new ApiError(400, 'validation_failed', 'connection_id names no connection of yours', [{ path: 'body.connection_id', message: 'unknown connection' }])
    const connector = getConnector(connection.provider)!
    const cfg = connector.workflowConfig.safeParse(config)
    if (!cfg.success) throw validationError(cfg.error, 'body.config')
    if (inputTemplate !== null && inputTemplate !== undefined && connector.inputTemplate) {
      const t = connector.inputTemplate.safeParse(inputTemplate)
      if (!t.success) throw validationError(t.error, 'body.input_template')
    }
    const p = PollPolicy.safeParse({ ...DEFAULT_POLL_POLICY, ...connector.defaultPollPolicy, ...policy })
    if (!p.success) throw validationError(p.error, 'body.poll_policy')
    // The connector's parsed config keeps its defaults out of storage: store what the user gave.
    return { config, policy }
  }

  const load = async (tenantId: string, id: string) => found(await store.catalog.getWorkflow(tenantId, id), 'workflow')

  let d = documented({ method: 'post', path: '/v1/workflows', summary: 'Create a workflow', tag: 'workflows', scope: 'workflows:write', body: WorkflowCreate, response: Workflow, status: 201 })
  app.post(d.path, auth('workflows:write'), valid('json', WorkflowCreate), async (c) => {
    const tenantId = tenantOf(c.get('principal'))
    const b = c.req.valid('json')
    const v = await checked(tenantId, b.connection_id, b.config, PolicyFromInput(b.poll_policy), b.input_template)
    const now = clock.now()
    const row = await store.catalog.createWorkflow({
      id: newId('wf'), tenantId, name: b.name, connectionId: b.connection_id, upstreamWorkflowId: b.upstream_workflow_id,
      inputTemplate: b.input_template ?? null, pollPolicy: v.policy, config: v.config, tags: b.tags, triggerRetry: b.trigger_retry,
      variablesSchema: (b.variables_schema ?? null) as Record<string, unknown> | null, createdAt: now, updatedAt: now,
    })
    return c.json(workflowBody(row), 201)
  })

  d = documented({ method: 'get', path: '/v1/workflows', summary: 'List workflows', tag: 'workflows', scope: 'workflows:read', query: Pagination, response: list(Workflow) })
  app.get(d.path, auth('workflows:read'), valid('query', Pagination), async (c) => {
    const q = c.req.valid('query')
    const page = await store.catalog.listWorkflows(tenantOf(c.get('principal')), cursorOf(q.cursor), q.limit)
    return c.json({ items: page.items.map(workflowBody), next_cursor: page.nextCursor })
  })

  d = documented({ method: 'get', path: '/v1/workflows/:id', summary: 'Read a workflow', tag: 'workflows', scope: 'workflows:read', params: IdParam, response: Workflow })
  app.get(d.path, auth('workflows:read'), valid('param', IdParam), async (c) => c.json(workflowBody(await load(tenantOf(c.get('principal')), c.req.valid('param').id))))

  d = documented({ method: 'patch', path: '/v1/workflows/:id', summary: 'Update a workflow', tag: 'workflows', scope: 'workflows:write', params: IdParam, body: WorkflowUpdate, response: Workflow })
  app.patch(d.path, auth('workflows:write'), valid('param', IdParam), valid('json', WorkflowUpdate), async (c) => {
    const tenantId = tenantOf(c.get('principal'))
    const row = await load(tenantId, c.req.valid('param').id)
    const b = c.req.valid('json')
    const policy = b.poll_policy ? { ...row.pollPolicy, ...PolicyFromInput(b.poll_policy) } : row.pollPolicy
    const v = await checked(tenantId, b.connection_id ?? row.connectionId, b.config ?? row.config, policy, b.input_template === undefined ? row.inputTemplate : b.input_template)
    const updated = await store.catalog.updateWorkflow(tenantId, row.id, {
      name: b.name ?? row.name, connectionId: b.connection_id ?? row.connectionId, upstreamWorkflowId: b.upstream_workflow_id ?? row.upstreamWorkflowId,
      inputTemplate: b.input_template === undefined ? row.inputTemplate : b.input_template, pollPolicy: v.policy, config: v.config,
      tags: b.tags ?? row.tags, triggerRetry: b.trigger_retry ?? row.triggerRetry,
      variablesSchema: b.variables_schema === undefined ? row.variablesSchema : (b.variables_schema as Record<string, unknown> | null), updatedAt: clock.now(),
    })
    return c.json(workflowBody(updated!))
  })

  d = documented({ method: 'delete', path: '/v1/workflows/:id', summary: 'Delete a workflow (409 while it has unfinished runs)', tag: 'workflows', scope: 'workflows:write', params: IdParam, response: Deleted, errors: [409] })
  app.delete(d.path, auth('workflows:write'), valid('param', IdParam), async (c) => {
    const tenantId = tenantOf(c.get('principal'))
    const row = await load(tenantId, c.req.valid('param').id)
    const active = await store.runs.countActiveOfWorkflow(row.id)
    if (active > 0) throw conflict('workflow_has_active_runs', `${active} run(s) of this workflow are not finished; cancel them first`)
    await store.catalog.deleteWorkflow(tenantId, row.id)
    return c.json({ deleted: true as const, id: row.id })
  })

}
