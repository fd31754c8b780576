import type * as z from 'zod'
import { cap, keySecuritySchemes, pascal, SchemaComponents, type Json } from './api-documents.ts'
import { ErrorBody } from './errors.ts'

/** A route as documented: the same zod schemas that validate it produce its OpenAPI entry. */
export interface RouteDoc {
  method: 'get' | 'post' | 'patch' | 'delete' | 'put'
  /** Hono path (`/v1/runs/:id`). */
  path: string
  summary: string
  /** Longer text shown under the summary (after the scope the route needs). */
  description?: string
  tag: string
  scope?: string
  auth?: 'key' | 'root' | 'none' | 'signature'
  /** Name of the operation in generated clients; derived from the method and path when absent. */
  operationId?: string
  params?: z.ZodType
  query?: z.ZodType
  /** Request headers the route reads (a zod object keyed by header name). */
  headers?: z.ZodType
  body?: z.ZodType
  response?: z.ZodType
  /** Media type of an answer that is not JSON (`text/html`, `text/plain` for metrics, `*\/*` for the proxy). */
  contentType?: string
  status?: number
  /** Headers of the success answer: name → description (string values). */
  responseHeaders?: Record<string, string>
  /** 4xx/5xx answers beyond the ones the route's shape implies (auth, validation, path ids). */
  errors?: number[]
  /**
   * The route streams. With a `response` it answers JSON or, given `Accept: text/event-stream`,
   * SSE; without one it is a stream route: a WebSocket upgrade or SSE, else 426.
   */
  streams?: boolean
  /** Other Hono paths this entry stands for (wildcard routes OpenAPI cannot spell). */
  matches?: string[]
}

/** The documented routes of one app, keyed by method and path, in registration order. */
export class RouteDocs {
  private readonly byRoute = new Map<string, RouteDoc>()

  /** Register a route's documentation (and return it, so the route uses the same path). */
  readonly add = (doc: RouteDoc): RouteDoc => {
    this.byRoute.set(`${doc.method} ${doc.path}`, doc)
    return doc
  }

  /** Every documented route, in registration order. */
  all(): RouteDoc[] {
    return [...this.byRoute.values()]
  }
}

/**
 * The answers runrelay gives besides success; each becomes a shared `components.responses` entry.
 * Grouped by whose move it is: the caller's credential, the request itself, the object it names,
 * the upstream behind it.
 */
const ERROR_RESPONSES: Record<number, [name: string, description: string]> = {
  401: ['Unauthorized', 'No credential, an unknown or revoked key, an expired token, or a bad signature.'], 403: ['Forbidden', 'The credential lacks the scope this route needs (`missing_scope`).'], 429: ['TooManyRequests', 'The key\'s request budget is spent; retry after `Retry-After` seconds.'],
  400: ['ValidationFailed', 'The request does not validate (`validation_failed`, details name each field); nothing changed.'], 413: ['PayloadTooLarge', 'The request body is over the configured limit.'], 414: ['UriTooLong', 'The URL is longer than 8 KiB.'], 426: ['UpgradeRequired', 'A stream route needs a WebSocket upgrade or `Accept: text/event-stream`.'],
  404: ['NotFound', 'No such object, or another tenant\'s.'], 409: ['Conflict', 'The object\'s state does not allow this now (the code says why).'], 422: ['IdempotencyKeyMismatch', 'This Idempotency-Key was used with a different request.'],
  502: ['BadGateway', 'The upstream refused or failed the call (its status is in the details).'], 504: ['GatewayTimeout', 'The upstream did not answer in time.'],
}

const SSE_DESCRIPTION = 'Server-Sent Events: each event has `id` (its position: a run\'s seq, or the feed\'s event id), `event` (the event type) and `data` (a `RunEvent` as JSON). Reconnect with `Last-Event-ID` to resume. The messages are described in `/asyncapi.json`.'
const WS_DESCRIPTION = 'Switching Protocols: a WebSocket speaking the `runrelay.v1` subprotocol. Every frame is JSON with a `type` (`hello`, `event`, `batch`, `caught_up`, `heartbeat`, …); the protocol is described in `/asyncapi.json`.'

const singular = (s: string) => (s.endsWith('ies') ? `${s.slice(0, -3)}y` : /[^s]s$/.test(s) ? s.slice(0, -1) : s)

/**
 * A readable operation name from the method and the path: `GET /v1/runs` → `listRuns`,
 * `POST /v1/runs` → `createRun`, `GET /v1/runs/:id` → `getRun`, `POST /v1/runs/:id/cancel` → `cancelRun`.
 */
export function operationIdOf(method: string, path: string): string {
  const segments = path.split('/').filter((s) => s && s !== 'v1')
  const words = segments.filter((s) => !s.startsWith(':'))
  if (words.length === 0) return `${method}Root`
  const last = words[words.length - 1]!
  const owners = words.slice(0, -1).map((w) => pascal(singular(w))).join('')
  const endsWithParam = segments[segments.length - 1]!.startsWith(':')
  if (endsWithParam) return `${{ get: 'get', patch: 'update', put: 'replace', delete: 'delete', post: 'post' }[method] ?? method}${owners}${pascal(singular(last))}`
  const plural = singular(last) !== last
  if (plural) return method === 'get' ? `list${owners}${pascal(last)}` : `${method === 'post' ? 'create' : method}${owners}${pascal(singular(last))}`
  // A verb after an id (`/runs/:id/cancel`) is an action on that object.
  if (method === 'post' && segments.length >= 2 && segments[segments.length - 2]!.startsWith(':')) return `${pascal(last).charAt(0).toLowerCase()}${pascal(last).slice(1)}${owners}`
  return `${method}${owners}${pascal(last)}`
}

/** The 4xx/5xx answers of a route: what its shape implies, plus what it declares. */
function errorStatuses(r: RouteDoc): number[] {
  const codes = new Set<number>([414, ...(r.errors ?? [])])
  const auth = r.auth ?? 'key'
  if (auth === 'key' || auth === 'root') [401, 403, 429].forEach((c) => codes.add(c))
  if (auth === 'signature') codes.add(401)
  if (r.params || r.query || r.body || r.headers) codes.add(400)
  if (r.path.includes(':')) codes.add(404)
  if (r.body) codes.add(413)
  if (r.streams && !r.response) codes.add(426)
  return [...codes].sort((a, b) => a - b)
}

/** The OpenAPI 3.1 document of the given documented routes. */
export function buildOpenApi(docs: RouteDoc[], opts: { title: string; version: string; serverUrl?: string }): Record<string, unknown> {
  const components = new SchemaComponents()
  const errorBody = components.add(ErrorBody, 'output')
  const responses: Record<string, Json> = {}
  const errorRef = (code: number) => {
    const [name, description] = ERROR_RESPONSES[code] ?? [`Status${code}`, `HTTP ${code}`]
    responses[name] ??= {
      description,
      ...(code === 429 ? { headers: { 'Retry-After': { description: 'Seconds until the key may call again.', schema: { type: 'integer', minimum: 0 } } } } : {}),
      content: { 'application/json': { schema: errorBody } },
    }
    return { $ref: `#/components/responses/${name}` }
  }

  const paths: Record<string, Record<string, unknown>> = {}
  const operationIds = new Set<string>()
  const tags = new Set<string>()
  for (const r of docs) {
    const path = r.path.replace(/:(\w+)/g, '{$1}')
    const parameters: unknown[] = []
    const addParams = (s: z.ZodType | undefined, where: 'path' | 'query' | 'header') => {
      if (!s) return
      const json = components.add(s, 'input') as { properties?: Record<string, Json>; required?: string[] }
      for (const [name, sch] of Object.entries(json.properties ?? {})) {
        const { description, ...schema } = sch
        parameters.push({ name, in: where, required: where === 'path' || (json.required ?? []).includes(name), ...(description ? { description } : {}), schema })
      }
    }
    addParams(r.params, 'path')
    addParams(r.query, 'query')
    addParams(r.headers, 'header')
    const streamRoute = r.streams && !r.response
    if (r.streams) {
      parameters.push({ name: 'Last-Event-ID', in: 'header', required: false, description: 'SSE: resume after this position (a run\'s seq, or the feed\'s event id); wins over `after`.', schema: { type: 'string', pattern: '^\\d+$' } })
    }
    if (streamRoute) {
      parameters.push({ name: 'Upgrade', in: 'header', required: false, description: '`websocket` opens a WebSocket; otherwise send `Accept: text/event-stream` for SSE.', schema: { type: 'string', enum: ['websocket'] } })
      parameters.push({ name: 'Sec-WebSocket-Protocol', in: 'header', required: false, description: 'Offer `runrelay.v1`, and optionally `runrelay.token.<subscriber token>` instead of a key.', schema: { type: 'string' } })
    }

    const success: Json = { description: r.status === 202 ? 'Accepted' : r.status === 201 ? 'Created' : 'OK' }
    const content: Json = {}
    if (r.response) content['application/json'] = { schema: components.add(r.response, 'output') }
    if (r.streams) content['text/event-stream'] = { schema: { type: 'string', description: SSE_DESCRIPTION } }
    if (!r.response && !r.streams) content[r.contentType ?? 'application/json'] = { schema: r.contentType?.startsWith('text/') ? { type: 'string' } : {} }
    success.content = content
    if (r.responseHeaders) {
      success.headers = Object.fromEntries(Object.entries(r.responseHeaders).map(([name, description]) => [name, { description, schema: { type: 'string' } }]))
    }
    const opResponses: Json = {}
    if (streamRoute) opResponses['101'] = { description: WS_DESCRIPTION }
    opResponses[String(r.status ?? 200)] = success
    // A stream resumed at the end of a finished run (SSE): nothing to send, and EventSource stops.
    if (r.streams && r.path.startsWith('/v1/runs/')) opResponses['204'] = { description: 'SSE: Last-Event-ID (or after) is the last seq of a finished run; nothing follows' }
    for (const code of errorStatuses(r)) opResponses[String(code)] = errorRef(code)
    opResponses.default = { description: 'Unexpected error (5xx); the body never carries internals.', content: { 'application/json': { schema: errorBody } } }

    let operationId = r.operationId ?? operationIdOf(r.method, r.path)
    // Two routes that derive the same name keep both: the second gets its method as a suffix.
    if (operationIds.has(operationId)) operationId = `${operationId}${cap(r.method)}`
    operationIds.add(operationId)
    tags.add(r.tag)

    const auth = r.auth ?? 'key'
    const needs = auth === 'root' ? 'Requires the root key.'
      : auth === 'none' ? 'No credential needed.'
        : auth === 'signature' ? 'Authenticated by the `sig` query parameter of the signed URL (no key).'
          : r.scope ? `Requires scope \`${r.scope}\`.` : 'Any key or subscriber token.'
    const op: Json = {
      operationId,
      summary: r.summary,
      description: [needs, r.description].filter(Boolean).join('\n\n'),
      tags: [r.tag],
      parameters,
      responses: opResponses,
      // Machine-readable: what a caller needs (a scope, the root key, a signature or nothing).
      'x-runrelay-scope': auth === 'root' ? 'root' : auth === 'none' ? 'none' : auth === 'signature' ? 'signature' : r.scope ?? null,
    }
    if (auth === 'none' || auth === 'signature') op.security = []
    if (r.body) op.requestBody = { required: true, content: { 'application/json': { schema: components.add(r.body, 'input') } } }
    ;(paths[path] ??= {})[r.method] = op
  }
  return {
    openapi: '3.1.0',
    info: {
      title: opts.title,
      version: opts.version,
      description: 'runrelay: trigger upstream workflow runs, watch them, and stream every change. The WebSocket and SSE messages are described by the AsyncAPI document at `/asyncapi.json`.',
      contact: { name: 'runrelay', url: `${(opts.serverUrl ?? '').replace(/\/+$/, '')}/docs` },
      // The package is private and names no license yet; this says so in SPDX terms.
      license: { name: 'Proprietary', identifier: 'LicenseRef-Proprietary' },
    },
    servers: [{ url: opts.serverUrl ?? '/', description: 'this server' }],
    tags: [...tags].sort().map((name) => ({ name, description: TAG_DESCRIPTIONS[name] ?? name })),
    components: {
      schemas: components.schemas,
      responses,
      securitySchemes: keySecuritySchemes('apiKey'),
    },
    security: [{ bearer: [] }, { apiKey: [] }],
    paths,
  }
}

const TAG_DESCRIPTIONS: Record<string, string> = {
  meta: 'Health, the API description and the built-in pages.',
  admin: 'Tenants and API keys.',
  connections: 'Upstream credentials and base URLs (secrets are write-only).',
  workflows: 'Named bindings of a connection, an upstream workflow, an input template and a poll policy.',
  runs: 'Trigger runs, read them and their history, and send commands.',
  streams: 'Live WebSocket and SSE streams of one run or of the tenant feed.',
  callbacks: 'Signed URLs upstreams push status to.',
  tokens: 'Short-lived subscriber tokens for browsers.',
  schedules: 'One-off and cron schedules that trigger runs.',
  webhooks: 'Outbound webhooks and their delivery log.',
  proxy: 'Vendor-native calls forwarded with a connection\'s credentials.',
}
