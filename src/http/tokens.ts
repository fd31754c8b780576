import { jwtVerify, SignJWT } from 'jose'
import * as z from 'zod'
import type { SecretBox } from '../core/crypto.ts'
import type { Clock } from '../core/ports.ts'
import type { Store } from '../db/store.ts'
import { TriggerTokenQueries } from '../db/trigger-tokens.ts'
import { ApiError, notFound } from './errors.ts'
import { newId } from '../core/crypto.ts'
import type { Principal, TokenScope, TokenVerifier, TriggerGrant } from './auth.ts'

/**
 * Subscriber tokens: short-lived HS256 JWTs that let a browser read some runs (by id,
 * workflow or tag) and nothing else. The signing key is derived from the encryption key
 * (HKDF, its own purpose), so there is no second secret to configure. The `typ` header,
 * the issuer and the audience keep them from being mistaken for any other JWT.
 */
export const TOKEN_ISSUER = 'runrelay'
export const TOKEN_AUDIENCE = 'runrelay:subscriber'
export const TOKEN_TYP = 'runrelay-sub+jwt'
export const TOKEN_ALG = 'HS256'
export const TOKEN_DEFAULT_TTL_S = 15 * 60
export const TOKEN_MAX_TTL_S = 24 * 3600
const KEY_PURPOSE = 'subscriber-token/v1'

const Claims = z.object({
  sub: z.string().min(1),
  scope: z.object({
    r: z.array(z.string()).optional(),
    w: z.array(z.string()).optional(),
    t: z.array(z.string()).optional(),
  }).strict(),
  /** A trigger token: the one workflow it may start runs of. */
  trg: z.object({ w: z.string().min(1) }).strict().optional(),
  jti: z.string().optional(),
  exp: z.number(),
  iat: z.number(),
})

/** The tag every run started by a trigger token carries: the token reads its runs through it. */
export const triggerTag = (tokenId: string): string => `rr-token:${tokenId}`
/** Trigger tokens live at most an hour: they start runs, so they stay short. */
export const TRIGGER_TOKEN_MAX_TTL_S = 3600

type TokenPrincipal = Extract<Principal, { kind: 'token' }>

/** One canonical form (sorted, deduplicated, empty lists dropped) so equal scopes compare equal. */
export function normalizeScope(s: TokenScope): TokenScope {
  const norm = (v?: string[]) => (v?.length ? [...new Set(v)].sort() : undefined)
  const out: TokenScope = {}
  const r = norm(s.runIds), w = norm(s.workflowIds), t = norm(s.tags)
  if (r) out.runIds = r
  if (w) out.workflowIds = w
  if (t) out.tags = t
  return out
}

export class SubscriberTokens implements TokenVerifier {
  private key?: Promise<Uint8Array>

  constructor(private readonly secrets: SecretBox, private readonly now: () => number = Date.now) {}

  private signingKey(): Promise<Uint8Array> {
    return (this.key ??= this.secrets.deriveKey(KEY_PURPOSE))
  }

  /** A signed token for `tenantId` reaching `scope`, valid `ttlSeconds`. */
  async mint(tenantId: string, scope: TokenScope, ttlSeconds = TOKEN_DEFAULT_TTL_S, trigger?: { workflowId: string }): Promise<{ token: string; expiresAt: number; scope: TokenScope; id: string }> {
    const id = newId('tok')
    // A trigger token reads exactly the runs it starts: they carry its tag.
    const s = normalizeScope(trigger ? { tags: [triggerTag(id)] } : scope)
    if (!s.runIds && !s.workflowIds && !s.tags) throw new Error('a subscriber token needs a scope')
    const ttl = Math.max(1, Math.min(trigger ? TRIGGER_TOKEN_MAX_TTL_S : TOKEN_MAX_TTL_S, Math.floor(ttlSeconds)))
    const iat = Math.floor(this.now() / 1000)
    const exp = iat + ttl
    const token = await new SignJWT({
      scope: { ...(s.runIds && { r: s.runIds }), ...(s.workflowIds && { w: s.workflowIds }), ...(s.tags && { t: s.tags }) },
      ...(trigger && { trg: { w: trigger.workflowId } }),
    })
      .setProtectedHeader({ alg: TOKEN_ALG, typ: TOKEN_TYP })
      .setIssuer(TOKEN_ISSUER)
      .setAudience(TOKEN_AUDIENCE)
      .setSubject(tenantId)
      .setIssuedAt(iat)
      .setExpirationTime(exp)
      .setJti(id)
      .sign(await this.signingKey())
    return { token, expiresAt: exp * 1000, scope: s, id }
  }

  /** The token's principal, or null when it is malformed, tampered, expired, or signed any other way. */
  async verify(token: string): Promise<TokenPrincipal | null> {
    if (token.length > 4096 || token.split('.').length !== 3) return null
    try {
      const { payload } = await jwtVerify(token, await this.signingKey(), {
        algorithms: [TOKEN_ALG], issuer: TOKEN_ISSUER, audience: TOKEN_AUDIENCE, typ: TOKEN_TYP,
        requiredClaims: ['exp', 'iat', 'sub'], currentDate: new Date(this.now()), clockTolerance: 0,
      })
      const claims = Claims.safeParse(payload)
      if (!claims.success) return null
      const { r, w, t } = claims.data.scope
      const scope = normalizeScope({ runIds: r, workflowIds: w, tags: t })
      if (!scope.runIds && !scope.workflowIds && !scope.tags) return null
      const { trg, jti } = claims.data
      let trigger: TriggerGrant | undefined
      if (trg) {
        // A trigger token's read scope must be exactly its own tag.
        if (!jti || scope.runIds || scope.workflowIds || scope.tags?.length !== 1 || scope.tags[0] !== triggerTag(jti)) return null
        trigger = { tokenId: jti, workflowId: trg.w, tag: triggerTag(jti) }
      }
      return { kind: 'token', tenantId: claims.data.sub, scope, expiresAt: claims.data.exp * 1000, ...(trigger && { trigger }) }
    } catch {
      return null
    }
  }
}

/**
 * The body a trigger route starts a run with. For a trigger token: 404 for any workflow but
 * its own, and its tag added (the token reads its runs through it). Keys pass unchanged.
 */
export function triggerBodyFor<B extends { tags: string[] }>(p: Principal, workflowId: string, body: B): B {
  if (p.kind !== 'token') return body
  if (!p.trigger || p.trigger.workflowId !== workflowId) throw notFound('workflow')
  // Another token's tag would let that token read this run.
  const foreign = body.tags.filter((t) => t.startsWith('rr-token:') && t !== p.trigger!.tag)
  if (foreign.length) throw new ApiError(400, 'validation_failed', 'rr-token: tags are set by runrelay', foreign.map(() => ({ path: 'body.tags', message: 'reserved tag' })))
  return { ...body, tags: [...new Set([...body.tags, p.trigger.tag])] }
}

/** Run `make` (a trigger); for a trigger token, with one run taken from its budget in the database, given back if `make` fails. */
export async function spendTrigger<T>(deps: { store: Store; clock: Clock }, p: Principal, make: () => Promise<T>): Promise<T> {
  if (p.kind !== 'token' || !p.trigger) return make()
  const budget = new TriggerTokenQueries(deps.store.db)
  if (!(await budget.take(p.tenantId, p.trigger.tokenId, deps.clock.now()))) {
    throw new ApiError(403, 'trigger_limit_reached', 'this trigger token has started all the runs it may')
  }
  try {
    return await make()
  } catch (err) {
    await budget.giveBack(p.tenantId, p.trigger.tokenId)
    throw err
  }
}
