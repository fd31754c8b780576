import type { Hono } from 'hono'
import * as z from 'zod'
import { newId } from '../../core/crypto.ts'
import { EventType } from '../../core/domain.ts'
import type { WebhookAttemptRow, WebhookDeliveryRow, WebhookEndpointRow } from '../../db/webhooks.ts'
import type { AppDeps, RouteContext } from '../context.ts'
import { cursorOf, valid } from '../context.ts'
import { tenantOf, type AuthEnv } from '../auth.ts'
import { ApiError, conflict, found, notFound } from '../errors.ts'
import { Deleted, csv, HttpUrl, Id, IdParam, Pagination, list } from '../schemas.ts'
import { isoOf } from '../serialize.ts'
import { newWebhookSecret, type WebhookFilter } from '../../services/webhook-dispatcher.ts'

const iso = z.string()
const Events = z.union([z.enum(['terminal', 'status', 'all']), z.array(EventType).min(1).max(20)])
  .describe('"terminal" (a run ended), "status" (created and every status change), "all", or a list of event types')

const EndpointCreate = z.object({
  url: HttpUrl,
  workflow_id: Id.nullable().default(null).describe('null: every workflow of the tenant'),
  events: Events.default('terminal'),
  description: z.string().max(500).optional(),
}).strict().meta({ id: 'WebhookEndpointCreate' })
const EndpointUpdate = z.object({
  url: HttpUrl.optional(),
  events: Events.optional(),
  description: z.string().max(500).nullable().optional(),
  enabled: z.boolean().optional().describe('true re-enables a disabled endpoint (its pending deliveries resume)'),
}).strict().meta({ id: 'WebhookEndpointUpdate' })
const RotateBody = z.object({
  grace_period_seconds: z.number().int().min(0).max(7 * 86_400).default(86_400).describe('how long the old secret keeps signing too'),
}).strict()
const Endpoint = z.object({
  id: z.string(), url: z.string(), workflow_id: z.string().nullable(), events: Events, description: z.string().nullable(),
  enabled: z.boolean(), disabled_reason: z.string().nullable(), disabled_at: iso.nullable(), failing_since: iso.nullable(),
  previous_secret_expires_at: iso.nullable(), created_at: iso, updated_at: iso,
  secret: z.string().optional().describe('the whsec_ signing secret, shown only when created or rotated'),
}).meta({ id: 'WebhookEndpoint' })
const Attempt = z.object({
  attempt: z.number().int(), at: iso, duration_ms: z.number().int(), status_code: z.number().int().nullable(), error: z.string().nullable(),
  response_body: z.string().nullable(), retry_after_ms: z.number().int().nullable(),
}).meta({ id: 'WebhookAttempt' })
const Delivery = z.object({
  id: z.string().describe('also the webhook-id header'), endpoint_id: z.string(), event_id: z.number().int(), run_id: z.string(), workflow_id: z.string(),
  event_type: z.string(), status: z.enum(['pending', 'succeeded', 'failed']), attempts: z.number().int(), next_attempt_at: iso.nullable(),
  last_status_code: z.number().int().nullable(), last_error: z.string().nullable(), created_at: iso, updated_at: iso, completed_at: iso.nullable(),
  payload: z.unknown().optional(), attempt_log: z.array(Attempt).optional(),
}).meta({ id: 'WebhookDelivery' })
const EndpointListQuery = Pagination.extend({ workflow_id: Id.optional() })
const DeliveryListQuery = Pagination.extend({
  endpoint_id: Id.optional(),
  status: csv(z.enum(['pending', 'succeeded', 'failed'])).optional(),
  run_id: Id.optional(),
  event_type: EventType.optional(),
})

const endpointBody = (e: WebhookEndpointRow, secret?: string): z.infer<typeof Endpoint> => ({
  id: e.id, url: e.url, workflow_id: e.workflowId, events: e.filter === 'types' ? (e.eventTypes as z.infer<typeof EventType>[]) : (e.filter as 'terminal'),
  description: e.description, enabled: e.enabled, disabled_reason: e.disabledReason, disabled_at: isoOf(e.disabledAt), failing_since: isoOf(e.failingSince),
  previous_secret_expires_at: e.previousSecret ? isoOf(e.previousSecretExpiresAt) : null, created_at: isoOf(e.createdAt)!, updated_at: isoOf(e.updatedAt)!,
  ...(secret ? { secret } : {}),
})
const attemptBody = (a: WebhookAttemptRow): z.infer<typeof Attempt> => ({
  attempt: a.attempt, at: isoOf(a.at)!, duration_ms: a.durationMs, status_code: a.statusCode, error: a.error, response_body: a.responseBody, retry_after_ms: a.retryAfterMs,
})
const deliveryBody = (d: WebhookDeliveryRow, extra: { payload?: boolean; attempts?: WebhookAttemptRow[] } = {}): z.infer<typeof Delivery> => ({
  id: d.id, endpoint_id: d.endpointId, event_id: d.eventId, run_id: d.runId, workflow_id: d.workflowId, event_type: d.eventType,
  status: d.status as 'pending', attempts: d.attempts, next_attempt_at: isoOf(d.nextAttemptAt), last_status_code: d.lastStatusCode, last_error: d.lastError,
  created_at: isoOf(d.createdAt)!, updated_at: isoOf(d.updatedAt)!, completed_at: isoOf(d.completedAt),
  ...(extra.payload ? { payload: JSON.parse(d.payload) } : {}), ...(extra.attempts ? { attempt_log: extra.attempts.map(attemptBody) } : {}),
})

const filterOf = (events: z.infer<typeof Events>): { filter: WebhookFilter; eventTypes: string[] } =>
  Array.isArray(events) ? { filter: 'types', eventTypes: [...new Set(events)] } : { filter: events, eventTypes: [] }

/** Outbound webhook endpoints (per tenant or per workflow) and their delivery log. */
export function registerWebhookRoutes(app: Hono<AuthEnv>, deps: AppDeps, { auth, documented }: RouteContext): void {
  const { store, clock, secrets } = deps
  const q = store.webhooks

  const checkUrl = async (url: string) => {
    try {
      await deps.checkUrl(url)
    } catch (err) {
      const message = err instanceof ApiError ? err.message.replace(/^base_url/, 'url') : String((err as Error)?.message ?? err)
      throw new ApiError(400, 'outbound_url_refused', message, [{ path: 'body.url', message }])
    }
  }
  const load = async (tenantId: string, endpointId: string) => found(await q.getEndpoint(tenantId, endpointId), 'webhook endpoint')

  let d = documented({ method: 'post', path: '/v1/webhooks', summary: 'Create a webhook endpoint; the signing secret is shown once', tag: 'webhooks', scope: 'workflows:write', body: EndpointCreate, response: Endpoint, status: 201 })
  app.post(d.path, auth('workflows:write'), valid('json', EndpointCreate), async (c) => {
    const tenantId = tenantOf(c.get('principal'))
    const b = c.req.valid('json')
    if (b.workflow_id && !(await store.catalog.getWorkflow(tenantId, b.workflow_id))) throw notFound('workflow')
    await checkUrl(b.url)
    const secret = newWebhookSecret()
    const now = clock.now()
    const row = await q.createEndpoint({
      id: newId('whe'), tenantId, workflowId: b.workflow_id, url: b.url, description: b.description ?? null, ...filterOf(b.events),
      secret: await secrets.encrypt(secret), enabled: true, createdAt: now, updatedAt: now,
    })
    return c.json(endpointBody(row, secret), 201)
  })

  d = documented({ method: 'get', path: '/v1/webhooks', summary: 'List webhook endpoints', tag: 'webhooks', scope: 'workflows:read', query: EndpointListQuery, response: list(Endpoint) })
  app.get(d.path, auth('workflows:read'), valid('query', EndpointListQuery), async (c) => {
    const qs = c.req.valid('query')
    const page = await q.listEndpoints(tenantOf(c.get('principal')), { workflowId: qs.workflow_id, cursor: cursorOf(qs.cursor), limit: qs.limit })
    return c.json({ items: page.items.map((e) => endpointBody(e)), next_cursor: page.nextCursor })
  })

  d = documented({ method: 'get', path: '/v1/webhooks/:id', summary: 'Read a webhook endpoint', tag: 'webhooks', scope: 'workflows:read', params: IdParam, response: Endpoint })
  app.get(d.path, auth('workflows:read'), valid('param', IdParam), async (c) => c.json(endpointBody(await load(tenantOf(c.get('principal')), c.req.valid('param').id))))

  d = documented({ method: 'patch', path: '/v1/webhooks/:id', summary: 'Update a webhook endpoint (enabled: true re-enables it)', tag: 'webhooks', scope: 'workflows:write', params: IdParam, body: EndpointUpdate, response: Endpoint })
  app.patch(d.path, auth('workflows:write'), valid('param', IdParam), valid('json', EndpointUpdate), async (c) => {
    const e = await load(tenantOf(c.get('principal')), c.req.valid('param').id)
    const b = c.req.valid('json')
    if (b.url) await checkUrl(b.url)
    const now = clock.now()
    const updated = await q.updateEndpoint(e.id, {
      url: b.url ?? e.url, description: b.description === undefined ? e.description : b.description, ...(b.events ? filterOf(b.events) : {}),
      ...(b.enabled === true && !e.enabled ? { enabled: true, disabledReason: null, disabledAt: null, failingSince: null } : {}),
      ...(b.enabled === false && e.enabled ? { enabled: false, disabledReason: 'disabled by API', disabledAt: now } : {}),
      updatedAt: now,
    })
    return c.json(endpointBody(updated!))
  })

  d = documented({ method: 'post', path: '/v1/webhooks/:id/rotate-secret', operationId: 'rotateWebhookSecret', summary: 'Rotate the signing secret; the old one keeps signing during the grace period. The new secret is shown once', tag: 'webhooks', scope: 'workflows:write', params: IdParam, body: RotateBody, response: Endpoint })
  app.post(d.path, auth('workflows:write'), valid('param', IdParam), valid('json', RotateBody), async (c) => {
    const e = await load(tenantOf(c.get('principal')), c.req.valid('param').id)
    const grace = c.req.valid('json').grace_period_seconds * 1000
    const secret = newWebhookSecret()
    const now = clock.now()
    const updated = await q.updateEndpoint(e.id, {
      secret: await secrets.encrypt(secret), previousSecret: grace > 0 ? e.secret : null, previousSecretExpiresAt: grace > 0 ? now + grace : null, updatedAt: now,
    })
    return c.json(endpointBody(updated!, secret))
  })

  d = documented({ method: 'delete', path: '/v1/webhooks/:id', summary: 'Delete a webhook endpoint (its pending deliveries are dropped; the log stays)', tag: 'webhooks', scope: 'workflows:write', params: IdParam, response: Deleted })
  app.delete(d.path, auth('workflows:write'), valid('param', IdParam), async (c) => {
    const e = await load(tenantOf(c.get('principal')), c.req.valid('param').id)
    await q.deleteEndpoint(e.id)
    return c.json({ deleted: true as const, id: e.id })
  })

  d = documented({ method: 'get', path: '/v1/webhook-deliveries', summary: 'The delivery log, newest first, with filters', tag: 'webhooks', scope: 'workflows:read', query: DeliveryListQuery, response: list(Delivery) })
  app.get(d.path, auth('workflows:read'), valid('query', DeliveryListQuery), async (c) => {
    const qs = c.req.valid('query')
    const page = await q.listDeliveries(tenantOf(c.get('principal')), { endpointId: qs.endpoint_id, status: qs.status, runId: qs.run_id, eventType: qs.event_type, cursor: cursorOf(qs.cursor), limit: qs.limit })
    return c.json({ items: page.items.map((x) => deliveryBody(x)), next_cursor: page.nextCursor })
  })

  const loadDelivery = async (tenantId: string, deliveryId: string) => found(await q.getDelivery(tenantId, deliveryId), 'webhook delivery')

  d = documented({ method: 'get', path: '/v1/webhook-deliveries/:id', summary: 'A delivery with its payload and every attempt', tag: 'webhooks', scope: 'workflows:read', params: IdParam, response: Delivery })
  app.get(d.path, auth('workflows:read'), valid('param', IdParam), async (c) => {
    const x = await loadDelivery(tenantOf(c.get('principal')), c.req.valid('param').id)
    return c.json(deliveryBody(x, { payload: true, attempts: await q.listAttempts(x.id) }))
  })

  d = documented({ method: 'get', path: '/v1/webhook-deliveries/:id/attempts', summary: 'The attempts of a delivery', tag: 'webhooks', scope: 'workflows:read', params: IdParam, response: z.object({ items: z.array(Attempt) }) })
  app.get(d.path, auth('workflows:read'), valid('param', IdParam), async (c) => {
    const x = await loadDelivery(tenantOf(c.get('principal')), c.req.valid('param').id)
    return c.json({ items: (await q.listAttempts(x.id)).map(attemptBody) })
  })

  d = documented({ method: 'post', path: '/v1/webhook-deliveries/:id/redeliver', errors: [409], summary: 'Send a delivery again now (same webhook-id; the retry schedule starts over)', tag: 'webhooks', scope: 'workflows:write', params: IdParam, response: Delivery, status: 202 })
  app.post(d.path, auth('workflows:write'), valid('param', IdParam), async (c) => {
    const tenantId = tenantOf(c.get('principal'))
    const x = await loadDelivery(tenantId, c.req.valid('param').id)
    const e = await q.getEndpoint(tenantId, x.endpointId)
    if (!e) throw conflict('endpoint_deleted', 'the endpoint of this delivery was deleted')
    if (!e.enabled) throw conflict('endpoint_disabled', `the endpoint is disabled (${e.disabledReason ?? 'by API'}); enable it first`)
    if (x.status === 'pending' && x.cycleAttempts === 0) return c.json(deliveryBody(x), 202)
    return c.json(deliveryBody((await q.redeliver(x.id, clock.now()))!), 202)
  })
}
