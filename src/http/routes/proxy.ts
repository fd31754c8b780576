import type { Context, Hono } from 'hono'
import * as z from 'zod'
import { joinUrl, readPrefix, redactedError } from '../../connectors/request.ts'
import { secretValues, UpstreamError, type Connector, type ProxyTriggerMatch } from '../../connectors/types.ts'
import { newId } from '../../core/crypto.ts'
import { pollPolicyOf } from '../../core/binding.ts'
import type { RunStatus } from '../../core/domain.ts'
import { parseJson } from '../../core/json.ts'
import { isOutboundUrlError } from '../../core/outbound.ts'
import { redactText } from '../../core/redact.ts'
import type { ConnectionRow, RunRow, WorkflowRow } from '../../db/store.ts'
import type { AppDeps, RouteContext } from '../context.ts'
import { tenantOf, type AuthEnv } from '../auth.ts'
import { ApiError, found, notFound, upstreamApiError } from '../errors.ts'
import { IdParam } from '../schemas.ts'

/**
 * Drop-in proxy: `ANY /v1/connections/{id}/proxy/<upstream path>` forwards a vendor-native call
 * to the connection's base URL with the connection's credentials, and answers the upstream's
 * answer as is (status, headers minus hop-by-hop ones, body). When the connector recognises the
 * call as its trigger (`matchTrigger`), the returned upstream id is watched as a runrelay run
 * and the answer gains `RunRelay-Run-Id`. Code written against a vendor's API gains live status
 * by changing only its base URL and key.
 */

/** RFC 9110 §7.6.1 hop-by-hop headers, plus what fetch recomputes or must not cross the proxy. */
const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade',
  'host', 'content-length',
])
/** The caller's credentials (runrelay's key) and browser state never reach the vendor. */
const CALLER_ONLY = new Set(['authorization', 'x-api-key', 'cookie', 'origin', 'referer', 'forwarded', 'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'x-real-ip'])
/** fetch has already decoded the body; the vendor's cookies are for the vendor's domain. */
const RESPONSE_DROP = new Set(['content-encoding', 'content-length', 'set-cookie'])

/** Trigger answers are JSON and small; larger or non-JSON answers are streamed untouched. */
const MAX_MATCHED_BODY = 1024 * 1024

export const RUN_ID_HEADER = 'RunRelay-Run-Id'
export const WORKFLOW_ID_HEADER = 'RunRelay-Workflow-Id'
/** Tag on runs the proxy starts, and on workflows it creates. */
export const PROXY_TAG = 'proxy'

const ProxyParams = IdParam.extend({ path: z.string().describe('the upstream path, relative to the connection\'s base URL') })

/** Registers the drop-in proxy (scope runs:write; the outbound guard, the rate budget and the body limit apply). */
export function registerProxyRoutes(app: Hono<AuthEnv>, deps: AppDeps, { auth, documented }: RouteContext): void {
  for (const method of ['get', 'post', 'put', 'patch', 'delete'] as const) {
    documented({ method, path: '/v1/connections/:id/proxy/:path', summary: 'Drop-in proxy: a vendor-native call forwarded with the connection\'s credentials; a trigger call answers RunRelay-Run-Id and is watched as a run', tag: 'proxy', scope: 'runs:write', contentType: '*/*', operationId: `proxy${method[0]!.toUpperCase()}${method.slice(1)}`, params: ProxyParams, errors: [409, 502, 504], matches: ['/v1/connections/:id/proxy', '/v1/connections/:id/proxy/*'], description: 'The answer is the upstream\'s (status, headers, body). `path` may contain slashes: everything after `/proxy/` is the upstream path.', responseHeaders: { [RUN_ID_HEADER]: 'the run watching the job this call started (a recognised trigger only)', [WORKFLOW_ID_HEADER]: 'that run\'s workflow' } })
  }
  const handler = async (c: Context<AuthEnv>) => proxy(c, deps)
  app.all('/v1/connections/:id/proxy', auth('runs:write'), handler)
  app.all('/v1/connections/:id/proxy/*', auth('runs:write'), handler)
}

async function proxy(c: Context<AuthEnv>, deps: AppDeps): Promise<Response> {
  const tenantId = tenantOf(c.get('principal'))
  const id = c.req.param('id') ?? ''
  if (!IdParam.safeParse({ id }).success) throw notFound('connection')
  const connection = found(await deps.store.catalog.getConnection(tenantId, id), 'connection')
  const { connector, ctx } = await deps.binder.forConnection(connection)
  if (!connector.authHeaders) throw new ApiError(409, 'not_supported', `the ${connection.provider} connector cannot be proxied`)

  const incoming = new URL(c.req.url)
  const prefix = `/v1/connections/${id}/proxy`
  const upstreamPath = incoming.pathname.slice(prefix.length) || '/'
  const target = upstreamUrl(connection.baseUrl, upstreamPath, incoming.search)

  const method = c.req.method.toUpperCase()
  const headers = new Headers()
  let authNames: Set<string>
  let auth: Record<string, string>
  try {
    auth = await connector.authHeaders(ctx)
    authNames = new Set(Object.keys(auth).map((k) => k.toLowerCase()))
  } catch (err) {
    throw upstreamFailure(err, secretValues(ctx))
  }
  c.req.raw.headers.forEach((value, name) => {
    const n = name.toLowerCase()
    if (HOP_BY_HOP.has(n) || CALLER_ONLY.has(n) || authNames.has(n) || n.startsWith('runrelay-')) return
    headers.set(name, value)
  })
  for (const [k, v] of Object.entries(auth)) headers.set(k, v)

  // The body limit middleware has bounded this read; the trigger matcher needs the bytes anyway.
  const body = method === 'GET' || method === 'HEAD' ? undefined : new Uint8Array(await c.req.arrayBuffer())
  let res: Response
  try {
    res = await ctx.fetch(target, { method, headers, body: body && body.byteLength > 0 ? body : undefined })
  } catch (err) {
    throw upstreamFailure(err, secretValues(ctx))
  }

  const outHeaders = new Headers()
  res.headers.forEach((value, name) => {
    const n = name.toLowerCase()
    if (HOP_BY_HOP.has(n) || RESPONSE_DROP.has(n)) return
    outHeaders.append(name, value)
  })

  if (!mayBeTrigger(connector, method, res)) return new Response(method === 'HEAD' ? null : res.body, { status: res.status, statusText: res.statusText, headers: outHeaders })

  // A chunked answer declares no length: read at most what a trigger answer may be, else pass it through unread.
  const read = await readPrefix(res.body, MAX_MATCHED_BODY)
  if (read.rest) return new Response(read.rest, { status: res.status, statusText: res.statusText, headers: outHeaders })
  const bytes = read.bytes
  const match = safeMatch(connector, {
    method, path: upstreamPath, query: incoming.searchParams, requestBody: jsonOf(body), status: res.status, responseBody: jsonOf(bytes),
  })
  if (match) {
    const run = await startWatching(deps, connection, connector, match, jsonOf(body))
    outHeaders.set(RUN_ID_HEADER, run.id)
    outHeaders.set(WORKFLOW_ID_HEADER, run.workflowId)
    outHeaders.append('Access-Control-Expose-Headers', `${RUN_ID_HEADER}, ${WORKFLOW_ID_HEADER}`)
  }
  return new Response(bytes, { status: res.status, statusText: res.statusText, headers: outHeaders })
}

/** The upstream URL for a proxied path, refused (404) when it would leave the base URL's path. */
export function upstreamUrl(baseUrl: string, path: string, search: string): string {
  const base = new URL(baseUrl)
  const url = new URL(joinUrl(base.href, path))
  const basePath = base.pathname.replace(/\/+$/, '')
  if (url.origin !== base.origin || (basePath && url.pathname !== basePath && !url.pathname.startsWith(`${basePath}/`))) {
    throw new ApiError(404, 'not_found', 'the proxied path leaves the connection\'s base URL')
  }
  url.search = search
  return url.href
}

function mayBeTrigger(connector: Connector, method: string, res: Response): boolean {
  if (!connector.matchTrigger || method === 'GET' || method === 'HEAD' || res.status < 200 || res.status >= 300) return false
  if (!(res.headers.get('content-type') ?? '').toLowerCase().includes('json')) return false
  const length = Number(res.headers.get('content-length') ?? '0')
  return !(length > MAX_MATCHED_BODY)
}

function safeMatch(connector: Connector, call: Parameters<NonNullable<Connector['matchTrigger']>>[0]): ProxyTriggerMatch | null {
  try {
    return connector.matchTrigger?.(call) ?? null
  } catch {
    // A matcher that chokes on an odd answer must not break the vendor's call.
    return null
  }
}

function jsonOf(bytes: Uint8Array | undefined): unknown {
  if (!bytes || bytes.byteLength === 0) return undefined
  try {
    // Too deep a nesting is no trigger to match (and must not overflow the matchers).
    return parseJson(new TextDecoder().decode(bytes))
  } catch {
    return undefined
  }
}

/** runrelay's answer for a failed proxied call, without the connection's secret values (secretValues) in it. */
function upstreamFailure(err: unknown, secrets: string[]): ApiError {
  if (err instanceof ApiError) return err
  const text = (e: unknown) => redactText((e as Error)?.message ?? String(e), secrets)
  if (isOutboundUrlError(err)) return new ApiError(502, 'outbound_url_refused', `upstream refused by the outbound guard: ${text(err)}`)
  if (err instanceof UpstreamError) return upstreamApiError(redactedError(err, secrets))
  const name = (err as Error)?.name
  const timeout = name === 'TimeoutError' || name === 'AbortError'
  return new ApiError(timeout ? 504 : 502, timeout ? 'upstream_timeout' : 'upstream_unreachable', `upstream ${timeout ? 'timed out' : 'unreachable'}: ${text(err)}`)
}

/**
 * The workflow a proxied trigger belongs to: the oldest workflow of this connection with that
 * upstream workflow id (so one configured by hand, with its poll policy and config, wins), or a
 * new one named `proxy: <upstream id>`, tagged `proxy`, with the connector's defaults.
 */
export async function workflowFor(deps: Pick<AppDeps, 'store' | 'clock'>, connection: ConnectionRow, upstreamWorkflowId: string): Promise<WorkflowRow> {
  const find = () => deps.store.catalog.oldestWorkflowOfUpstream(connection, upstreamWorkflowId)
  const existing = await find()
  if (existing) return existing
  const now = deps.clock.now()
  await deps.store.catalog.createWorkflow({
    id: newId('wf'), tenantId: connection.tenantId, name: `proxy: ${upstreamWorkflowId}`.slice(0, 200), connectionId: connection.id,
    upstreamWorkflowId: upstreamWorkflowId.slice(0, 500), inputTemplate: null, pollPolicy: {}, config: {}, tags: [PROXY_TAG], createdAt: now, updatedAt: now,
  })
  // Two proxied triggers racing both create one: the oldest is the one everybody uses from now on.
  return (await find())!
}

/**
 * A run that is already triggered upstream: created queued with its upstream id (the watcher
 * never triggers a run that has one), then the trigger's answer is applied as an observation
 * (status, outputs) through the run host, so it is one more diff-based change like a push.
 */
async function startWatching(deps: AppDeps, connection: ConnectionRow, connector: Connector, match: ProxyTriggerMatch, input: unknown): Promise<RunRow> {
  const workflow = await workflowFor(deps, connection, match.upstreamWorkflowId)
  const policy = pollPolicyOf(workflow, connector)
  const now = deps.clock.now()
  const tags = [...new Set([...workflow.tags, PROXY_TAG])]
  const status: RunStatus = 'queued'
  const run = await deps.hosts.create({
    id: newId('run'), tenantId: workflow.tenantId, workflowId: workflow.id, status, upstreamId: match.upstreamId,
    input: input ?? null, variables: {}, runtimeVariables: {}, tags, connectorState: match.state ?? {}, outputKeys: [], lastSeq: 1,
    transientErrors: 0, polls: 0, triggerAttemptedAt: now, startedAt: now, scheduledAt: null, deadlineAt: now + policy.deadlineMs,
    nextTickAt: now + policy.firstIntervalMs, createdAt: now, updatedAt: now,
  }, { type: 'run.created', data: {
    status, workflow_id: workflow.id, tags, variables: {}, runtime_variables: {}, scheduled_at: null,
    via: 'proxy', connection_id: connection.id, upstream_id: match.upstreamId,
  } })
  const { upstreamWorkflowId: _w, upstreamId: _u, state: _s, ...obs } = match
  await deps.hosts.push(run, obs)
  return run
}
