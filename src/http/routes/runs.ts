import type { Context, Hono } from 'hono'
import * as z from 'zod'
import type { CommandName } from '../../connectors/types.ts'
import { verifyCallbackSignature } from '../../core/binding.ts'
import { newId } from '../../core/crypto.ts'
import { CommandRejected } from '../../core/watcher.ts'
import type { RunRow } from '../../db/store.ts'
import type { FeedFilter } from '../../core/run-change.ts'
import type { AppDeps, RouteContext } from '../context.ts'
import { cursorOf, valid } from '../context.ts'
import { tenantOf, type AuthEnv, type Principal, type TokenScope } from '../auth.ts'
import { ApiError, conflict, found, notFound } from '../errors.ts'
import { idempotentJson } from '../idempotency.ts'
import { spendTrigger, triggerBodyFor } from '../tokens.ts'
import {
  CommandBody, EventList, EventsQuery, FeedQuery, IdParam, InputBody, list, Run, RunCreate, RunCreateWithWorkflow, RunListQuery, StreamQuery, TriggerHeaders,
} from '../schemas.ts'
import { assertCallbackLive, callbackBody, callbackObservation, RunCallbackQuery, signedCallbackId } from '../callbacks.ts'
import { runBody } from '../serialize.ts'
import { triggerRun } from '../../services/trigger.ts'

const Accepted = z.object({ accepted: z.literal(true) })

/** Whether a subscriber token may see this run. */
export function tokenSees(scope: TokenScope, run: Pick<RunRow, 'id' | 'workflowId' | 'tags'>): boolean {
  if (scope.runIds?.includes(run.id)) return true
  if (scope.workflowIds?.includes(run.workflowId)) return true
  if (scope.tags?.some((t) => run.tags.includes(t))) return true
  return false
}

/** Narrow a feed filter to what a token may see (its scope is a union: runs, workflows or tags). */
function feedFilterFor(p: Principal, filter: FeedFilter): FeedFilter[] {
  if (p.kind !== 'token') return [filter]
  const parts: FeedFilter[] = []
  const s = p.scope
  if (s.runIds?.length) parts.push({ ...filter, runIds: s.runIds })
  if (s.workflowIds?.length) parts.push({ ...filter, workflowIds: filter.workflowIds?.length ? filter.workflowIds.filter((w) => s.workflowIds!.includes(w)) : s.workflowIds })
  if (s.tags?.length) parts.push({ ...filter, tags: filter.tags?.length ? filter.tags.filter((t) => s.tags!.includes(t)) : s.tags })
  return parts.filter((f) => (f.workflowIds === undefined || f.workflowIds.length > 0) && (f.tags === undefined || f.tags.length > 0))
}

/** Runs: trigger, read, history, streams, commands, and the upstream's callbacks. */
export function registerRunRoutes(app: Hono<AuthEnv>, deps: AppDeps, { auth, documented }: RouteContext): void {
  const { store, hosts, streams } = deps

  /** A run the caller may see, or a 404 (another tenant's run, or outside a token's scope). */
  const loadRun = async (p: Principal, id: string): Promise<RunRow> => {
    const run = await store.runs.get(tenantOf(p), id)
    if (!run || (p.kind === 'token' && !tokenSees(p.scope, run))) throw notFound('run')
    return run
  }

  /** A trigger under Stripe's idempotency rules; a trigger token's run also takes one from its budget. */
  const idempotent = (c: Context<AuthEnv>, tenantId: string, body: unknown, make: (id?: string) => Promise<RunRow>): Promise<Response> =>
    idempotentJson(c, deps, tenantId, body, 202, async (id) => runBody(await spendTrigger(deps, c.get('principal'), () => make(id))), {
      // The key reserves the run's id: a retry finds that run (replayed as 202) or creates it, never a second one.
      newId: () => newId('run'),
      find: async (id) => { const run = await store.runs.get(tenantId, id); return run ? runBody(run) : undefined },
    })

  let d = documented({ method: 'post', path: '/v1/workflows/:id/runs', summary: 'Trigger a run of a workflow (honours Idempotency-Key)', tag: 'runs', scope: 'runs:write', operationId: 'triggerWorkflowRun', params: IdParam, headers: TriggerHeaders, body: RunCreate, response: Run, status: 202, errors: [409, 422], responseHeaders: { 'Idempotent-Replayed': '`true` when this answers a repeated Idempotency-Key with the first answer (no second run)' } })
  app.post(d.path, auth('runs:write', { triggerTokens: true }), valid('param', IdParam), valid('json', RunCreate), async (c) => {
    const tenantId = tenantOf(c.get('principal'))
    const workflow = found(await store.catalog.getWorkflow(tenantId, c.req.valid('param').id), 'workflow')
    const body = triggerBodyFor(c.get('principal'), workflow.id, c.req.valid('json'))
    return idempotent(c, tenantId, body, (id) => triggerRun(deps, workflow, body, { id }))
  })

  d = documented({ method: 'post', path: '/v1/runs', summary: 'Trigger a run (workflow_id in the body; honours Idempotency-Key)', tag: 'runs', scope: 'runs:write', operationId: 'triggerRun', headers: TriggerHeaders, body: RunCreateWithWorkflow, response: Run, status: 202, errors: [404, 409, 422], responseHeaders: { 'Idempotent-Replayed': '`true` when this answers a repeated Idempotency-Key with the first answer (no second run)' } })
  app.post(d.path, auth('runs:write', { triggerTokens: true }), valid('json', RunCreateWithWorkflow), async (c) => {
    const tenantId = tenantOf(c.get('principal'))
    const { workflow_id, ...requested } = c.req.valid('json')
    const workflow = found(await store.catalog.getWorkflow(tenantId, workflow_id), 'workflow')
    const body = triggerBodyFor(c.get('principal'), workflow.id, requested)
    return idempotent(c, tenantId, { workflow_id, ...body }, (id) => triggerRun(deps, workflow, body, { id }))
  })

  d = documented({ method: 'post', path: '/v1/runs/:id/replay', summary: 'Trigger the run again: a new run of the same workflow with the same variables and tags, linked by replay_of (honours Idempotency-Key)', tag: 'runs', scope: 'runs:write', params: IdParam, response: Run, status: 202 })
  app.post(d.path, auth('runs:write'), valid('param', IdParam), async (c) => {
    const p = c.get('principal')
    const original = await loadRun(p, c.req.valid('param').id)
    const workflow = found(await store.catalog.getWorkflow(original.tenantId, original.workflowId), 'workflow')
    const body = { variables: original.variables, runtime_variables: original.runtimeVariables, tags: original.tags.filter((t) => !workflow.tags.includes(t)) }
    return idempotent(c, original.tenantId, { replay_of: original.id }, (id) => triggerRun(deps, workflow, body, { replayOf: original.id, id }))
  })

  d = documented({ method: 'get', path: '/v1/runs', summary: 'List runs, newest first, with filters and a cursor', tag: 'runs', scope: 'runs:read', query: RunListQuery, response: list(Run) })
  app.get(d.path, auth('runs:read'), valid('query', RunListQuery), async (c) => {
    const p = c.get('principal')
    if (p.kind === 'token') throw new ApiError(403, 'missing_scope', 'subscriber tokens read single runs and streams only')
    const q = c.req.valid('query')
    const page = await store.runs.list(tenantOf(p), {
      workflowIds: q.workflow_id, status: q.status, tag: q.tag, search: q.q, cursor: cursorOf(q.cursor), limit: q.limit,
      createdAfter: q.created_after ? Date.parse(q.created_after) : undefined, createdBefore: q.created_before ? Date.parse(q.created_before) : undefined,
    })
    return c.json({ items: page.items.map(runBody), next_cursor: page.nextCursor })
  })

  d = documented({ method: 'get', path: '/v1/runs/:id', summary: 'Read a run', tag: 'runs', scope: 'runs:read', params: IdParam, response: Run })
  app.get(d.path, auth('runs:read', { tokens: true }), valid('param', IdParam), async (c) => c.json(runBody(await loadRun(c.get('principal'), c.req.valid('param').id))))

  const afterOf = (c: Context, q: number | undefined): number => {
    const last = c.req.header('last-event-id')
    if (last !== undefined && /^\d+$/.test(last.trim())) return Number(last.trim())
    return q ?? 0
  }
  const wantsSse = (c: Context) => (c.req.header('accept') ?? '').includes('text/event-stream')
  const wantsWs = (c: Context) => (c.req.header('upgrade') ?? '').toLowerCase() === 'websocket'
  /** A stream route's transport: WebSocket, SSE, or a 426. */
  const transportOf = (c: Context): 'ws' | 'sse' => {
    if (wantsWs(c)) return 'ws'
    if (wantsSse(c)) return 'sse'
    throw new ApiError(426, 'upgrade_required', 'open a WebSocket, or send Accept: text/event-stream')
  }
  const streamTarget = (c: Context<AuthEnv>) => {
    const p = c.get('principal')
    if (p.kind !== 'token') return {}
    // The token in force: the one that opened the stream, then the last refresh.
    let current = p
    return {
      expiresAt: p.expiresAt,
      inForce: deps.tokens?.inForce ? () => deps.tokens!.inForce!(current) : undefined,
      refresh: deps.tokens ? async (t: string) => {
        const next = await deps.tokens!.verify(t)
        if (!next || next.tenantId !== p.tenantId || JSON.stringify(next.scope) !== JSON.stringify(p.scope)) return null
        current = next
        return { expiresAt: next.expiresAt }
      } : undefined,
    }
  }

  /**
   * A run's stream. An SSE request that resumes at the end of a finished run gets 204: the HTML
   * spec has EventSource stop reconnecting on it (a stream that just ended would be reopened).
   */
  const openRunStream = (c: Context<AuthEnv>, run: RunRow, transport: 'ws' | 'sse', after: number) => {
    const finished = run.finishedAt !== null && run.finishedAt !== undefined
    if (transport === 'sse' && finished && after >= run.lastSeq) return c.body(null, 204)
    return streams.open(c, { tenantId: run.tenantId, runId: run.id, transport, after, finished, ...streamTarget(c) })
  }

  // Documented as JSON only: one media type per operation, so generated clients type `data` as an
  // EventList. The SSE form this path also serves (Accept: text/event-stream) is the `streamRun` operation's.
  d = documented({ method: 'get', path: '/v1/runs/:id/events', summary: 'A run\'s event history (JSON, a page at a time after `after`)', description: 'The same path given `Accept: text/event-stream` streams the history and then live events as SSE, exactly as `GET /v1/runs/{id}/stream` (operation `streamRun`) does: ids are seqs, `Last-Event-ID` resumes, 204 once a finished run has nothing more. Generated clients call `streamRun` for the stream.', tag: 'runs', scope: 'runs:read', operationId: 'listRunEvents', params: IdParam, query: EventsQuery, response: EventList })
  app.get(d.path, auth('runs:read', { tokens: true }), valid('param', IdParam), valid('query', EventsQuery), async (c) => {
    const run = await loadRun(c.get('principal'), c.req.valid('param').id)
    const q = c.req.valid('query')
    if (wantsSse(c)) return openRunStream(c, run, 'sse', afterOf(c, q.after))
    const events = await store.runs.events(run.id, q.after, q.limit)
    return c.json({ events, next_after: events.length === q.limit ? events[events.length - 1]!.seq : null })
  })

  d = documented({ method: 'get', path: '/v1/runs/:id/stream', summary: 'WebSocket (or SSE) stream of one run: replays after `after`, then live', tag: 'streams', scope: 'runs:read', operationId: 'streamRun', params: IdParam, query: StreamQuery, streams: true })
  app.get(d.path, auth('runs:read', { tokens: true }), valid('param', IdParam), valid('query', StreamQuery), async (c) => {
    const run = await loadRun(c.get('principal'), c.req.valid('param').id)
    return openRunStream(c, run, transportOf(c), afterOf(c, c.req.valid('query').after))
  })

  d = documented({ method: 'get', path: '/v1/stream', summary: 'WebSocket (or SSE) feed of the tenant\'s events, filtered by workflow, status and tags; `after` is an event id', tag: 'streams', scope: 'runs:read', operationId: 'streamFeed', query: FeedQuery, streams: true })
  app.get(d.path, auth('runs:read', { tokens: true }), valid('query', FeedQuery), async (c) => {
    const p = c.get('principal')
    const q = c.req.valid('query')
    const transport = transportOf(c)
    const filters = feedFilterFor(p, { workflowIds: q.workflow_id, statuses: q.status, tags: q.tag })
    if (filters.length !== 1) throw new ApiError(403, 'forbidden', 'this token may stream its own runs only: use /v1/runs/{id}/stream')
    // A new feed subscriber without `after` starts at the live end, not at the tenant's first event.
    const after = q.after ?? (c.req.header('last-event-id') ? afterOf(c, undefined) : await store.runs.lastEventId(tenantOf(p)))
    return streams.open(c, { tenantId: tenantOf(p), transport, after, filter: filters[0], ...streamTarget(c) })
  })

  for (const name of ['cancel', 'pause', 'resume', 'input'] as const satisfies readonly CommandName[]) {
    const schema = name === 'input' ? InputBody : CommandBody
    d = documented({ method: 'post', path: `/v1/runs/:id/${name}`, summary: `${name[0]!.toUpperCase()}${name.slice(1)} a run (409 when its state or the provider does not allow it)`, tag: 'runs', scope: 'runs:write', operationId: name === 'input' ? 'sendRunInput' : undefined, params: IdParam, body: schema, response: Run, errors: [409] })
    app.post(d.path, auth('runs:write'), valid('param', IdParam), valid('json', schema), async (c) => {
      const p = c.get('principal')
      const run = await loadRun(p, c.req.valid('param').id)
      const body = c.req.valid('json') as { data?: unknown; reason?: string }
      try {
        const updated = await hosts.command(run, name, name === 'input' ? body.data : body.reason, p.kind === 'key' ? p.keyId : 'unknown')
        return c.json(runBody(updated))
      } catch (err) {
        if (err instanceof CommandRejected) throw err.code === 'not_found' ? notFound('run') : conflict(err.code, err.message)
        throw err
      }
    })
  }

  d = documented({ method: 'post', path: '/v1/callbacks/:id', summary: 'Signed per-run callback URL for upstreams that push status (410 once expired or once the run has finished)', tag: 'callbacks', auth: 'signature', operationId: 'postRunCallback', params: IdParam, query: RunCallbackQuery, response: Accepted, status: 202, errors: [410] })
  app.post(d.path, async (c) => {
    const id = await signedCallbackId(c, (runId, sig, q) => verifyCallbackSignature(deps.secrets, runId, sig, q.exp), 'run')
    const run = found(await store.runs.getById(id), 'run')
    assertCallbackLive(c.req.query('exp')!, deps.clock.now(), run)
    const body = await callbackBody(c)
    const { connector, ctx } = await deps.binder.bind(run)
    const obs = callbackObservation(connector, ctx, run, body)
    await hosts.push(run, obs)
    return c.json({ accepted: true as const }, 202)
  })
}
