import type { Hono } from 'hono'
import * as z from 'zod'
import { getConnector, PROVIDERS } from '../../connectors/index.ts'
import { UpstreamError } from '../../connectors/types.ts'
import { connectionCallbackUrl, verifyConnectionCallbackSignature } from '../../core/binding.ts'
import { newId } from '../../core/crypto.ts'
import type { ConnectionRow } from '../../db/store.ts'
import type { AppDeps, RouteContext } from '../context.ts'
import { cursorOf, valid } from '../context.ts'
import { tenantOf, type AuthEnv } from '../auth.ts'
import { ApiError, conflict, found, notFound, upstreamApiError, validationError } from '../errors.ts'
import { Deleted, Connection, ConnectionCreate, ConnectionUpdate, IdParam, list, Pagination } from '../schemas.ts'
import { callbackBody, callbackObservation, CallbackQuery, signedCallbackId } from '../callbacks.ts'
import { connectionBody } from '../serialize.ts'

/** Connectors without a network (demo) get this base URL; it is never fetched. */
const NO_NETWORK_BASE_URL = 'http://demo.invalid'

export const UpstreamWorkflowList = z.object({ items: z.array(z.object({ id: z.string(), name: z.string().optional(), description: z.string().optional() })) }).meta({ id: 'UpstreamWorkflowList' })
const TestResult = z.object({ ok: z.boolean(), message: z.string() }).meta({ id: 'ConnectionTestResult' })

/** Connections: upstream credentials, write-only and encrypted at rest. */
export function registerConnectionRoutes(app: Hono<AuthEnv>, deps: AppDeps, { auth, documented }: RouteContext): void {
  const { store, clock, secrets } = deps

  const credentialFields = async (c: ConnectionRow) => Object.keys(await secrets.decrypt<Record<string, string>>(c.secret)).sort()
  const body = async (c: ConnectionRow) => connectionBody(c, await credentialFields(c),
    getConnector(c.provider)?.callbackUpstreamId ? await connectionCallbackUrl(secrets, deps.config.publicUrl, c.id) : undefined)

  /** Validate provider config and credentials with the connector's own schemas, and the base URL with the outbound guard. */
  const checked = async (provider: string, baseUrl: string | undefined, config: Record<string, unknown>, credentials: Record<string, string>) => {
    const connector = getConnector(provider)
    if (!connector) throw new ApiError(400, 'validation_failed', `unknown provider "${provider}"; one of ${PROVIDERS.join(', ')}`, [{ path: 'body.provider', message: 'unknown provider' }])
    const cfg = connector.connectionConfig.safeParse(config)
    if (!cfg.success) throw validationError(cfg.error, 'body.config')
    const cred = connector.credentials.safeParse(credentials)
    if (!cred.success) throw validationError(cred.error, 'body.credentials')
    const url = baseUrl ?? (provider === 'demo' ? NO_NETWORK_BASE_URL : undefined)
    if (!url) throw new ApiError(400, 'validation_failed', 'base_url is required for this provider', [{ path: 'body.base_url', message: 'required' }])
    if (provider !== 'demo') await deps.checkUrl(url)
    return { config: cfg.data, credentials: cred.data, baseUrl: url }
  }

  const load = async (tenantId: string, id: string) => found(await store.catalog.getConnection(tenantId, id), 'connection')

  let d = documented({ method: 'post', path: '/v1/connections', summary: 'Create a connection', tag: 'connections', scope: 'workflows:write', body: ConnectionCreate, response: Connection, status: 201 })
  app.post(d.path, auth('workflows:write'), valid('json', ConnectionCreate), async (c) => {
    const tenantId = tenantOf(c.get('principal'))
    const b = c.req.valid('json')
    const v = await checked(b.provider, b.base_url, b.config, b.credentials)
    const now = clock.now()
    const row = await store.catalog.createConnection({
      id: newId('con'), tenantId, name: b.name, provider: b.provider, baseUrl: v.baseUrl, config: v.config,
      secret: await secrets.encrypt(v.credentials), rateLimitPerSecond: b.rate_limit_per_second ?? null, createdAt: now, updatedAt: now,
    })
    return c.json(await body(row), 201)
  })

  d = documented({ method: 'get', path: '/v1/connections', summary: 'List connections', tag: 'connections', scope: 'workflows:read', query: Pagination, response: list(Connection) })
  app.get(d.path, auth('workflows:read'), valid('query', Pagination), async (c) => {
    const q = c.req.valid('query')
    const page = await store.catalog.listConnections(tenantOf(c.get('principal')), cursorOf(q.cursor), q.limit)
    return c.json({ items: await Promise.all(page.items.map(body)), next_cursor: page.nextCursor })
  })

  d = documented({ method: 'get', path: '/v1/connections/:id', summary: 'Read a connection (credentials are never returned)', tag: 'connections', scope: 'workflows:read', params: IdParam, response: Connection })
  app.get(d.path, auth('workflows:read'), valid('param', IdParam), async (c) => c.json(await body(await load(tenantOf(c.get('principal')), c.req.valid('param').id))))

  d = documented({ method: 'patch', path: '/v1/connections/:id', summary: 'Update a connection; credentials given are merged (an empty string removes one)', tag: 'connections', scope: 'workflows:write', params: IdParam, body: ConnectionUpdate, response: Connection })
  app.patch(d.path, auth('workflows:write'), valid('param', IdParam), valid('json', ConnectionUpdate), async (c) => {
    const tenantId = tenantOf(c.get('principal'))
    const row = await load(tenantId, c.req.valid('param').id)
    const b = c.req.valid('json')
    let credentials = await secrets.decrypt<Record<string, string>>(row.secret)
    if (b.credentials) {
      credentials = { ...credentials, ...b.credentials }
      for (const [k, v] of Object.entries(b.credentials)) if (v === '') delete credentials[k]
    }
    const v = await checked(row.provider, b.base_url ?? row.baseUrl, { ...row.config, ...b.config }, credentials)
    const updated = await store.catalog.updateConnection(tenantId, row.id, {
      name: b.name ?? row.name, baseUrl: v.baseUrl, config: v.config, secret: await secrets.encrypt(v.credentials),
      rateLimitPerSecond: b.rate_limit_per_second === undefined ? row.rateLimitPerSecond : b.rate_limit_per_second, updatedAt: Math.max(clock.now(), row.updatedAt + 1),
    })
    return c.json(await body(updated!))
  })

  d = documented({ method: 'delete', path: '/v1/connections/:id', summary: 'Delete a connection (409 while workflows use it)', tag: 'connections', scope: 'workflows:write', params: IdParam, response: Deleted, errors: [409] })
  app.delete(d.path, auth('workflows:write'), valid('param', IdParam), async (c) => {
    const tenantId = tenantOf(c.get('principal'))
    const row = await load(tenantId, c.req.valid('param').id)
    const used = await store.catalog.countWorkflowsOfConnection(row.id)
    if (used > 0) throw conflict('connection_in_use', `${used} workflow(s) use this connection; delete them first`)
    await store.catalog.deleteConnection(tenantId, row.id)
    return c.json({ deleted: true as const, id: row.id })
  })

  const upstreamCall = async <T>(fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn()
    } catch (err) {
      if (err instanceof UpstreamError) throw upstreamApiError(err)
      throw err
    }
  }

  d = documented({ method: 'post', path: '/v1/connections/:id/test', summary: 'Check that the connection reaches its upstream', tag: 'connections', scope: 'workflows:write', params: IdParam, response: TestResult, errors: [409, 502] })
  app.post(d.path, auth('workflows:write'), valid('param', IdParam), async (c) => {
    const row = await load(tenantOf(c.get('principal')), c.req.valid('param').id)
    const { connector, ctx } = await deps.binder.forConnection(row)
    if (!connector.testConnection) throw conflict('not_supported', `the ${row.provider} connector has no connection test`)
    try {
      return c.json(await connector.testConnection(ctx))
    } catch (err) {
      return c.json({ ok: false, message: (err as Error).message })
    }
  })

  d = documented({ method: 'get', path: '/v1/connections/:id/workflows', summary: 'Discover the upstream workflows', tag: 'connections', scope: 'workflows:read', operationId: 'listUpstreamWorkflows', params: IdParam, response: UpstreamWorkflowList, errors: [409, 502] })
  app.get(d.path, auth('workflows:read'), valid('param', IdParam), async (c) => {
    const row = await load(tenantOf(c.get('principal')), c.req.valid('param').id)
    const { connector, ctx } = await deps.binder.forConnection(row)
    if (!connector.listWorkflows) throw conflict('not_supported', `the ${row.provider} upstream cannot list its workflows`)
    const items = await upstreamCall(() => connector.listWorkflows!(ctx))
    return c.json({ items: items.map((w) => ({ id: w.id, name: w.name, description: w.description })) })
  })

  const CallbackAccepted = z.object({ accepted: z.literal(true), run_id: z.string().nullable() })
  d = documented({ method: 'post', path: '/v1/connections/:id/callback', summary: 'Signed account-wide webhook of a connection: routed to the run it names', tag: 'callbacks', auth: 'signature', operationId: 'postConnectionCallback', params: IdParam, query: CallbackQuery, response: CallbackAccepted, status: 202 })
  app.post(d.path, async (c) => {
    const id = await signedCallbackId(c, (connectionId, sig) => verifyConnectionCallbackSignature(secrets, connectionId, sig), 'connection')
    const connection = await store.catalog.getConnectionById(id)
    const connector = connection ? getConnector(connection.provider) : undefined
    if (!connection || !connector?.callbackUpstreamId) throw notFound('connection')
    const payload = await callbackBody(c)
    const upstreamId = connector.callbackUpstreamId(payload)
    const run = upstreamId ? await store.runs.findByUpstreamId(connection, upstreamId) : undefined
    // A webhook about a run runrelay does not watch is acknowledged (so the vendor stops retrying) and dropped.
    if (!run) return c.json({ accepted: true as const, run_id: null }, 202)
    const { ctx } = await deps.binder.bind(run)
    await deps.hosts.push(run, callbackObservation(connector, ctx, run, payload))
    return c.json({ accepted: true as const, run_id: run.id }, 202)
  })
}
