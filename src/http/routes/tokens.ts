import type { Hono } from 'hono'
import * as z from 'zod'
import type { AppDeps, RouteContext } from '../context.ts'
import { valid } from '../context.ts'
import { requireScope, tenantOf, type AuthEnv } from '../auth.ts'
import { ApiError, notFound } from '../errors.ts'
import { idempotentJson } from '../idempotency.ts'
import { Id, Tag } from '../schemas.ts'
import { SubscriberTokens, TOKEN_DEFAULT_TTL_S, TOKEN_MAX_TTL_S, TRIGGER_TOKEN_MAX_GRANT_BYTES, TRIGGER_TOKEN_MAX_TTL_S } from '../tokens.ts'

const TRIGGER_MAX_RUNS = 1000

export const TokenCreate = z.object({
  scope: z.enum(['read', 'trigger']).default('read')
    .describe('read (default): a read-only subscriber token for run_ids / workflow_ids / tags; trigger: may start up to max_runs runs of workflow_id, and read those runs'),
  run_ids: z.array(Id).max(100).optional(),
  workflow_ids: z.array(Id).max(20).optional(),
  tags: z.array(Tag).max(20).optional(),
  workflow_id: Id.optional().describe('trigger tokens: the one workflow the token may start'),
  max_runs: z.number().int().min(1).max(TRIGGER_MAX_RUNS).optional().describe('trigger tokens: how many runs it may start (default 1), counted in the database'),
  run_tags: z.array(Tag).max(20).optional()
    .describe('trigger tokens: tags every run it starts carries; a trigger body may repeat them but name no other tag (403 tag_not_allowed)'),
  variables: z.record(z.string().min(1).max(128), z.unknown()).optional()
    .describe('trigger tokens: pinned variables. Every run it starts gets these values; a trigger body that gives one of them another value gets 403 variable_pinned (the same value is accepted)'),
  allowed_variables: z.array(z.string().min(1).max(128)).max(100).optional()
    .describe('trigger tokens: the only variables a trigger body may set besides the pinned ones (403 variable_not_allowed); default any'),
  ttl_seconds: z.number().int().min(1).max(TOKEN_MAX_TTL_S).default(TOKEN_DEFAULT_TTL_S)
    .describe(`lifetime; default 900 (15 minutes), at most 86400 (${TRIGGER_TOKEN_MAX_TTL_S} for trigger tokens)`),
}).strict().superRefine((b, ctx) => {
  const issue = (path: string, message: string) => ctx.addIssue({ code: 'custom', path: [path], message })
  if (b.scope === 'trigger') {
    if (!b.workflow_id) issue('workflow_id', 'a trigger token needs workflow_id')
    for (const k of ['run_ids', 'workflow_ids', 'tags'] as const) if (b[k] !== undefined) issue(k, 'a trigger token reads only the runs it starts: leave this out (run_tags sets the tags of its runs)')
    if (b.ttl_seconds > TRIGGER_TOKEN_MAX_TTL_S) issue('ttl_seconds', `a trigger token lives at most ${TRIGGER_TOKEN_MAX_TTL_S} seconds`)
    if (b.run_tags?.some((t) => t.startsWith('rr-token:'))) issue('run_tags', 'rr-token: tags are set by runrelay')
    const grant = JSON.stringify({ t: b.run_tags, v: b.variables, a: b.allowed_variables })
    if (new TextEncoder().encode(grant).length > TRIGGER_TOKEN_MAX_GRANT_BYTES) issue('variables', `run_tags, variables and allowed_variables together take at most ${TRIGGER_TOKEN_MAX_GRANT_BYTES} bytes of JSON (they travel inside the token)`)
  } else {
    for (const k of ['workflow_id', 'max_runs', 'run_tags', 'variables', 'allowed_variables'] as const) if (b[k] !== undefined) issue(k, 'only trigger tokens (scope: "trigger") take this')
    if ((b.run_ids?.length ?? 0) + (b.workflow_ids?.length ?? 0) + (b.tags?.length ?? 0) === 0) issue('run_ids', 'give at least one of run_ids, workflow_ids, tags')
  }
}).meta({ id: 'TokenCreate' })

export const TokenCreated = z.object({
  id: z.string().describe('the token\'s id (its jti): revoke it with POST /v1/tokens/{id}/revoke'),
  token: z.string(),
  token_type: z.literal('Bearer'),
  expires_at: z.string(),
  expires_in: z.number().int(),
  scope: z.object({ run_ids: z.array(z.string()), workflow_ids: z.array(z.string()), tags: z.array(z.string()) }),
  trigger: z.object({
    workflow_id: z.string(), max_runs: z.number().int(), run_tags: z.array(z.string()),
    variables: z.record(z.string(), z.unknown()).describe('pinned variables'), allowed_variables: z.array(z.string()).nullable(),
  }).optional()
    .describe('trigger tokens: what the token may start (its runs carry the tag in scope.tags)'),
}).meta({ id: 'TokenCreated' })

/** The verifier createApp uses when the runtime gives none: every runtime gets tokens from the encryption key. */
export function tokenService(deps: Pick<AppDeps, 'secrets' | 'clock' | 'tokens' | 'store'>): SubscriberTokens {
  if (deps.tokens instanceof SubscriberTokens) return deps.tokens
  return new SubscriberTokens(deps.secrets, () => deps.clock.now(), deps.store.keys)
}

export const TokenRevokeAll = z.object({
  before: z.iso.datetime({ offset: true }).optional().describe('revoke every token of the tenant minted before this time (default: now); a later time replaces an earlier one'),
}).strict().meta({ id: 'TokenRevokeAll' })
export const TokenRevoked = z.object({
  revoked: z.literal(true),
  id: z.string().nullable().describe('the revoked token (null when revoking by time)'),
  before: z.string().nullable().describe('tokens minted before this time are refused (null when revoking one token)'),
}).meta({ id: 'TokenRevoked' })
const TokenIdParam = z.object({ id: z.string().regex(/^tok_[\w-]{1,60}$/, 'not a token id') })

/** `POST /v1/tokens`: an API key mints a read-only subscriber token, or a trigger token, for a browser. */
export function registerTokenRoutes(app: Hono<AuthEnv>, deps: AppDeps, { auth, documented }: RouteContext): void {
  const tokens = tokenService(deps)
  const budgets = deps.store.keys.triggerTokens
  const d = documented({
    method: 'post', path: '/v1/tokens',
    summary: 'Mint a short-lived token for a browser: read-only (runs, workflows or tags), or trigger (start up to max_runs runs of one workflow); honours Idempotency-Key',
    tag: 'tokens', scope: 'runs:read', body: TokenCreate, response: TokenCreated, status: 201, errors: [404, 409, 422],
  })
  app.post(d.path, auth('runs:read'), valid('json', TokenCreate), async (c) => {
    const p = c.get('principal')
    if (p.kind !== 'key') throw new ApiError(403, 'forbidden', 'only API keys mint tokens')
    const tenantId = tenantOf(p)
    const b = c.req.valid('json')
    if (b.scope === 'trigger') requireScope(p, 'runs:write')
    for (const runId of new Set(b.run_ids ?? [])) if (!(await deps.store.runs.get(tenantId, runId))) throw notFound(`run ${runId}`)
    for (const wfId of new Set([...(b.workflow_ids ?? []), ...(b.workflow_id ? [b.workflow_id] : [])])) {
      if (!(await deps.store.catalog.getWorkflow(tenantId, wfId))) throw notFound(`workflow ${wfId}`)
    }
    return idempotentJson(c, deps, tenantId, b, 201, async () => {
      const trigger = b.scope === 'trigger'
        ? { workflowId: b.workflow_id!, maxRuns: b.max_runs ?? 1, tags: b.run_tags ?? [], pinned: b.variables ?? {}, allowed: b.allowed_variables }
        : undefined
      const minted = await tokens.mint(tenantId, { runIds: b.run_ids, workflowIds: b.workflow_ids, tags: b.tags }, b.ttl_seconds, trigger, p.keyId)
      if (trigger) {
        await budgets.create({ id: minted.id, tenantId, workflowId: trigger.workflowId, maxRuns: trigger.maxRuns, usedRuns: 0, expiresAt: minted.expiresAt, createdAt: deps.clock.now() })
      }
      return {
        id: minted.id,
        token: minted.token,
        token_type: 'Bearer' as const,
        expires_at: new Date(minted.expiresAt).toISOString(),
        expires_in: Math.round((minted.expiresAt - deps.clock.now()) / 1000),
        scope: { run_ids: minted.scope.runIds ?? [], workflow_ids: minted.scope.workflowIds ?? [], tags: minted.scope.tags ?? [] },
        ...(trigger && { trigger: {
          workflow_id: trigger.workflowId, max_runs: trigger.maxRuns, run_tags: [...new Set(trigger.tags)].sort(), variables: trigger.pinned, allowed_variables: trigger.allowed ?? null,
        } }),
      }
    })
  })

  // Revocation: a row per token id, or a not-before per tenant; every process (and Worker) refuses
  // the tokens within its read-cache sync. Tokens also die with the key that minted them.
  const revokeOne = async (tenantId: string, id: string) => {
    const now = deps.clock.now()
    // No token of that id can live past the longest lifetime from now: the row can go then.
    await deps.store.keys.revokeTokens(tenantId, id, now, now + TOKEN_MAX_TTL_S * 1000)
    return { revoked: true as const, id, before: null }
  }
  for (const [method, path] of [['delete', '/v1/tokens/:id'], ['post', '/v1/tokens/:id/revoke']] as const) {
    const r = documented({
      method, path, summary: 'Revoke one subscriber or trigger token by its id (the `id` of POST /v1/tokens, or the token\'s jti): it is refused within a fraction of a second on every process; open streams it authenticated close with 4001 at their next token check',
      tag: 'tokens', scope: 'runs:read', params: TokenIdParam, response: TokenRevoked,
    })
    app.on(method.toUpperCase(), r.path, auth('runs:read'), valid('param', TokenIdParam), async (c) => {
      const p = c.get('principal')
      if (p.kind !== 'key') throw new ApiError(403, 'forbidden', 'only API keys revoke tokens')
      return c.json(await revokeOne(tenantOf(p), c.req.valid('param').id))
    })
  }
  const all = documented({
    method: 'post', path: '/v1/tokens/revoke', summary: 'Revoke every subscriber and trigger token of the tenant minted before a time (default now); admin keys',
    tag: 'tokens', scope: 'admin', body: TokenRevokeAll, response: TokenRevoked,
  })
  app.post(all.path, auth('admin'), valid('json', TokenRevokeAll), async (c) => {
    const tenantId = tenantOf(c.get('principal'))
    const now = deps.clock.now()
    const b = c.req.valid('json')
    const before = b.before ? Date.parse(b.before) : now
    // A not-before far ahead would refuse every token minted until then, new ones included.
    if (before > now + 60_000) throw new ApiError(400, 'validation_failed', 'before may not lie in the future', [{ path: 'body.before', message: 'in the future' }])
    // Tokens minted before `before` are all dead by `before` + the longest lifetime.
    await deps.store.keys.revokeTokens(tenantId, '*', before, Math.max(before, now) + TOKEN_MAX_TTL_S * 1000)
    return c.json({ revoked: true as const, id: null, before: new Date(before).toISOString() })
  })
}
