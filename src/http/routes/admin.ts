import type { Hono } from 'hono'
import { newApiKey, newId, sha256Hex } from '../../core/crypto.ts'
import { SCOPES } from '../../core/domain.ts'
import type { AppDeps, RouteContext } from '../context.ts'
import { cursorOf, valid } from '../context.ts'
import type { AuthEnv, Principal } from '../auth.ts'
import { found, notFound } from '../errors.ts'
import { ApiKey, Id, IdParam, KeyCreate, list, Pagination, Tenant, TenantCreate, TenantCreated } from '../schemas.ts'
import { apiKeyBody, tenantBody } from '../serialize.ts'
import * as z from 'zod'

const KeyParams = z.object({ id: Id, keyId: Id })

/** Tenants (root key) and API keys (root key for any tenant, an admin key for its own). */
export function registerAdminRoutes(app: Hono<AuthEnv>, deps: AppDeps, { auth, authenticate, documented }: RouteContext): void {
  const { store, clock } = deps

  const createKey = async (tenantId: string, name: string, scopes: string[]) => {
    const { key, prefix } = newApiKey()
    const row = await store.keys.create({ id: newId('key'), tenantId, name, prefix, hash: await sha256Hex(key), scopes, createdAt: clock.now() })
    return apiKeyBody(row, key)
  }
  /** The tenant a key route acts on: the path's for the root key, the caller's own otherwise. */
  const keyTenant = async (p: Principal, pathTenant: string | undefined): Promise<string> => {
    if (p.kind === 'root') {
      if (!pathTenant || !(await store.keys.getTenant(pathTenant))) throw notFound('tenant')
      return pathTenant
    }
    if (p.kind !== 'key' || (pathTenant && pathTenant !== p.tenantId)) throw notFound('tenant')
    return p.tenantId
  }

  const Me = z.object({
    kind: z.enum(['root', 'key', 'token']),
    tenant_id: z.string().nullable(),
    key_id: z.string().nullable().describe('the key; for a token, the key that minted it'),
    token_id: z.string().nullable().describe('a token\'s id (revoke it with POST /v1/tokens/{id}/revoke)'),
    scopes: z.array(z.string()).describe('what this credential may do (a subscriber token: runs:read)'),
    token_scope: z.object({ run_ids: z.array(z.string()), workflow_ids: z.array(z.string()), tags: z.array(z.string()) }).nullable(),
    expires_at: z.string().nullable(),
  }).meta({ id: 'Me' })
  let d = documented({ method: 'get', path: '/v1/me', summary: 'Who this credential is: its tenant and scopes (any key or subscriber token)', tag: 'admin', response: Me })
  app.get(d.path, async (c) => {
    const p = await authenticate(c, true)
    const body: z.infer<typeof Me> = p.kind === 'root'
      ? { kind: 'root', tenant_id: null, key_id: p.keyId, token_id: null, scopes: ['root'], token_scope: null, expires_at: null }
      : p.kind === 'key'
        ? { kind: 'key', tenant_id: p.tenantId, key_id: p.keyId, token_id: null, scopes: [...p.scopes].sort(), token_scope: null, expires_at: null }
        : { kind: 'token', tenant_id: p.tenantId, key_id: p.keyId ?? null, token_id: p.tokenId, scopes: ['runs:read'], expires_at: new Date(p.expiresAt).toISOString(),
            token_scope: { run_ids: p.scope.runIds ?? [], workflow_ids: p.scope.workflowIds ?? [], tags: p.scope.tags ?? [] } }
    return c.json(body)
  })

  d = documented({ method: 'post', path: '/v1/tenants', summary: 'Create a tenant (and its first key, shown once)', tag: 'admin', auth: 'root', body: TenantCreate, response: TenantCreated, status: 201 })
  app.post(d.path, auth('root'), valid('json', TenantCreate), async (c) => {
    const body = c.req.valid('json')
    const tenant = await store.keys.createTenant({ id: newId('ten'), name: body.name, retentionDays: body.retention_days ?? null, createdAt: clock.now() })
    const key = body.create_key ? await createKey(tenant.id, `${body.name} admin`, [...SCOPES]) : undefined
    return c.json({ tenant: tenantBody(tenant), ...(key ? { key } : {}) }, 201)
  })

  d = documented({ method: 'get', path: '/v1/tenants', summary: 'List tenants', tag: 'admin', auth: 'root', query: Pagination, response: list(Tenant) })
  app.get(d.path, auth('root'), valid('query', Pagination), async (c) => {
    const q = c.req.valid('query')
    const page = await store.keys.listTenants(cursorOf(q.cursor), q.limit)
    return c.json({ items: page.items.map(tenantBody), next_cursor: page.nextCursor })
  })

  for (const path of ['/v1/keys', '/v1/tenants/:id/keys'] as const) {
    const forTenant = path.includes(':id')
    d = documented({ method: 'post', path, summary: forTenant ? "Create a key for a tenant (root)" : 'Create a key for your tenant (admin)', tag: 'admin', scope: 'admin', params: forTenant ? IdParam : undefined, body: KeyCreate, response: ApiKey, status: 201 })
    app.post(path, auth('root_or_admin'), valid('json', KeyCreate), async (c) => {
      const tenantId = await keyTenant(c.get('principal'), c.req.param('id'))
      const body = c.req.valid('json')
      return c.json(await createKey(tenantId, body.name, [...new Set(body.scopes)]), 201)
    })
    d = documented({ method: 'get', path, summary: 'List keys (prefixes only)', tag: 'admin', scope: 'admin', params: forTenant ? IdParam : undefined, query: Pagination, response: list(ApiKey) })
    app.get(path, auth('root_or_admin'), valid('query', Pagination), async (c) => {
      const tenantId = await keyTenant(c.get('principal'), c.req.param('id'))
      const q = c.req.valid('query')
      const page = await store.keys.list(tenantId, cursorOf(q.cursor), q.limit)
      return c.json({ items: page.items.map((k) => apiKeyBody(k)), next_cursor: page.nextCursor })
    })
  }

  for (const path of ['/v1/keys/:keyId', '/v1/tenants/:id/keys/:keyId'] as const) {
    const forTenant = path.includes(':id/')
    d = documented({ method: 'delete', path, summary: 'Revoke a key', tag: 'admin', scope: 'admin', params: forTenant ? KeyParams : KeyParams.pick({ keyId: true }), response: ApiKey })
    app.delete(path, auth('root_or_admin'), valid('param', forTenant ? KeyParams : KeyParams.pick({ keyId: true })), async (c) => {
      const tenantId = await keyTenant(c.get('principal'), c.req.param('id'))
      const revoked = found(await store.keys.revoke(tenantId, c.req.param('keyId')!, clock.now()), 'key')
      return c.json(apiKeyBody(revoked))
    })
  }
}
