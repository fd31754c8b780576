import type { Hono } from 'hono'
import * as z from 'zod'
import type { AppDeps, RouteContext } from '../app.ts'
import { valid } from '../app.ts'
import { tenantOf, type AuthEnv } from '../auth.ts'
import { ApiError, notFound } from '../errors.ts'
import { documented } from '../openapi.ts'
import { Id, Tag } from '../schemas.ts'
import { SubscriberTokens, TOKEN_DEFAULT_TTL_S, TOKEN_MAX_TTL_S } from '../tokens.ts'

export const TokenCreate = z.object({
  run_ids: z.array(Id).max(100).optional(),
  workflow_ids: z.array(Id).max(20).optional(),
  tags: z.array(Tag).max(20).optional(),
  ttl_seconds: z.number().int().min(1).max(TOKEN_MAX_TTL_S).default(TOKEN_DEFAULT_TTL_S).describe('lifetime; default 900 (15 minutes), at most 86400'),
}).strict().refine((b) => (b.run_ids?.length ?? 0) + (b.workflow_ids?.length ?? 0) + (b.tags?.length ?? 0) > 0, {
  message: 'give at least one of run_ids, workflow_ids, tags', path: ['run_ids'],
})

export const TokenCreated = z.object({
  token: z.string(),
  token_type: z.literal('Bearer'),
  expires_at: z.string(),
  expires_in: z.number().int(),
  scope: z.object({ run_ids: z.array(z.string()), workflow_ids: z.array(z.string()), tags: z.array(z.string()) }),
})

/** The verifier createApp uses when the runtime gives none: every runtime gets tokens from the encryption key. */
export function tokenService(deps: Pick<AppDeps, 'secrets' | 'clock' | 'tokens'>): SubscriberTokens {
  if (deps.tokens instanceof SubscriberTokens) return deps.tokens
  return new SubscriberTokens(deps.secrets, () => deps.clock.now())
}

/** `POST /v1/tokens`: an API key mints a read-only subscriber token for a browser. */
export function registerTokenRoutes(app: Hono<AuthEnv>, deps: AppDeps, { auth }: RouteContext): void {
  const tokens = tokenService(deps)
  const d = documented({
    method: 'post', path: '/v1/tokens', summary: 'Mint a short-lived, read-only subscriber token scoped to runs, workflows or tags (for browsers)',
    tag: 'tokens', scope: 'runs:read', body: TokenCreate, response: TokenCreated, status: 201,
  })
  app.post(d.path, auth('runs:read'), valid('json', TokenCreate), async (c) => {
    const p = c.get('principal')
    if (p.kind !== 'key') throw new ApiError(403, 'forbidden', 'only API keys mint subscriber tokens')
    const tenantId = tenantOf(p)
    const b = c.req.valid('json')
    for (const runId of new Set(b.run_ids ?? [])) if (!(await deps.store.getRun(tenantId, runId))) throw notFound(`run ${runId}`)
    for (const wfId of new Set(b.workflow_ids ?? [])) if (!(await deps.store.getWorkflow(tenantId, wfId))) throw notFound(`workflow ${wfId}`)
    const minted = await tokens.mint(tenantId, { runIds: b.run_ids, workflowIds: b.workflow_ids, tags: b.tags }, b.ttl_seconds)
    return c.json({
      token: minted.token,
      token_type: 'Bearer' as const,
      expires_at: new Date(minted.expiresAt).toISOString(),
      expires_in: Math.round((minted.expiresAt - deps.clock.now()) / 1000),
      scope: { run_ids: minted.scope.runIds ?? [], workflow_ids: minted.scope.workflowIds ?? [], tags: minted.scope.tags ?? [] },
    }, 201)
  })
}
