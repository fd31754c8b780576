import type { Hono } from 'hono'
import * as z from 'zod'
import { TriggerTokenQueries } from '../../db/trigger-tokens.ts'
import type { AppDeps, RouteContext } from '../context.ts'
import { valid } from '../context.ts'
import { requireScope, tenantOf, type AuthEnv } from '../auth.ts'
import { ApiError, notFound } from '../errors.ts'
import { idempotentJson } from '../idempotency.ts'
import { documented } from '../openapi.ts'
import { Id, Tag } from '../schemas.ts'
import { SubscriberTokens, TOKEN_DEFAULT_TTL_S, TOKEN_MAX_TTL_S, TRIGGER_TOKEN_MAX_TTL_S } from '../tokens.ts'

const TRIGGER_MAX_RUNS = 1000

export const TokenCreate = z.object({
  scope: z.enum(['read', 'trigger']).default('read')
    .describe('read (default): a read-only subscriber token for run_ids / workflow_ids / tags; trigger: may start up to max_runs runs of workflow_id, and read those runs'),
  run_ids: z.array(Id).max(100).optional(),
  workflow_ids: z.array(Id).max(20).optional(),
  tags: z.array(Tag).max(20).optional(),
  workflow_id: Id.optional().describe('trigger tokens: the one workflow the token may start'),
  max_runs: z.number().int().min(1).max(TRIGGER_MAX_RUNS).optional().describe('trigger tokens: how many runs it may start (default 1), counted in the database'),
  ttl_seconds: z.number().int().min(1).max(TOKEN_MAX_TTL_S).default(TOKEN_DEFAULT_TTL_S)
    .describe(`lifetime; default 900 (15 minutes), at most 86400 (${TRIGGER_TOKEN_MAX_TTL_S} for trigger tokens)`),
}).strict().superRefine((b, ctx) => {
  const issue = (path: string, message: string) => ctx.addIssue({ code: 'custom', path: [path], message })
  if (b.scope === 'trigger') {
    if (!b.workflow_id) issue('workflow_id', 'a trigger token needs workflow_id')
    for (const k of ['run_ids', 'workflow_ids', 'tags'] as const) if (b[k] !== undefined) issue(k, 'a trigger token reads only the runs it starts: leave this out')
    if (b.ttl_seconds > TRIGGER_TOKEN_MAX_TTL_S) issue('ttl_seconds', `a trigger token lives at most ${TRIGGER_TOKEN_MAX_TTL_S} seconds`)
  } else {
    for (const k of ['workflow_id', 'max_runs'] as const) if (b[k] !== undefined) issue(k, 'only trigger tokens (scope: "trigger") take this')
    if ((b.run_ids?.length ?? 0) + (b.workflow_ids?.length ?? 0) + (b.tags?.length ?? 0) === 0) issue('run_ids', 'give at least one of run_ids, workflow_ids, tags')
  }
}).meta({ id: 'TokenCreate' })

export const TokenCreated = z.object({
  token: z.string(),
  token_type: z.literal('Bearer'),
  expires_at: z.string(),
  expires_in: z.number().int(),
  scope: z.object({ run_ids: z.array(z.string()), workflow_ids: z.array(z.string()), tags: z.array(z.string()) }),
  trigger: z.object({ workflow_id: z.string(), max_runs: z.number().int() }).optional()
    .describe('trigger tokens: what the token may start (its runs carry the tag in scope.tags)'),
}).meta({ id: 'TokenCreated' })

/** The verifier createApp uses when the runtime gives none: every runtime gets tokens from the encryption key. */
export function tokenService(deps: Pick<AppDeps, 'secrets' | 'clock' | 'tokens'>): SubscriberTokens {
  if (deps.tokens instanceof SubscriberTokens) return deps.tokens
  return new SubscriberTokens(deps.secrets, () => deps.clock.now())
}

/** `POST /v1/tokens`: an API key mints a read-only subscriber token, or a trigger token, for a browser. */
export function registerTokenRoutes(app: Hono<AuthEnv>, deps: AppDeps, { auth }: RouteContext): void {
  const tokens = tokenService(deps)
  const budgets = new TriggerTokenQueries(deps.store.db)
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
    for (const runId of new Set(b.run_ids ?? [])) if (!(await deps.store.getRun(tenantId, runId))) throw notFound(`run ${runId}`)
    for (const wfId of new Set([...(b.workflow_ids ?? []), ...(b.workflow_id ? [b.workflow_id] : [])])) {
      if (!(await deps.store.getWorkflow(tenantId, wfId))) throw notFound(`workflow ${wfId}`)
    }
    return idempotentJson(c, deps, tenantId, b, 201, async () => {
      const trigger = b.scope === 'trigger' ? { workflowId: b.workflow_id!, maxRuns: b.max_runs ?? 1 } : undefined
      const minted = await tokens.mint(tenantId, { runIds: b.run_ids, workflowIds: b.workflow_ids, tags: b.tags }, b.ttl_seconds, trigger)
      if (trigger) {
        await budgets.create({ id: minted.id, tenantId, workflowId: trigger.workflowId, maxRuns: trigger.maxRuns, usedRuns: 0, expiresAt: minted.expiresAt, createdAt: deps.clock.now() })
      }
      return {
        token: minted.token,
        token_type: 'Bearer' as const,
        expires_at: new Date(minted.expiresAt).toISOString(),
        expires_in: Math.round((minted.expiresAt - deps.clock.now()) / 1000),
        scope: { run_ids: minted.scope.runIds ?? [], workflow_ids: minted.scope.workflowIds ?? [], tags: minted.scope.tags ?? [] },
        ...(trigger && { trigger: { workflow_id: trigger.workflowId, max_runs: trigger.maxRuns } }),
      }
    })
  })
}
