import { jwtVerify, SignJWT } from 'jose'
import * as z from 'zod'
import type { SecretBox } from '../core/crypto.ts'
import type { Clock } from '../core/ports.ts'
import type { Store, TokenRevocations } from '../db/store.ts'
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
  /** The API key that minted the token: the token dies with it. */
  key: z.string().min(1).optional(),
  /** Mint time in ms (iat is whole seconds): "revoke all tokens minted before T" is exact. */
  iat_ms: z.number().optional(),
  scope: z.object({
    r: z.array(z.string()).optional(),
    w: z.array(z.string()).optional(),
    t: z.array(z.string()).optional(),
  }).strict(),
  /** A trigger token: the one workflow it may start runs of. */
  trg: z.object({
    w: z.string().min(1),
    /** Tags its runs carry: a trigger body may name no other. */
    t: z.array(z.string()).optional(),
    /** Pinned variables. */
    v: z.record(z.string(), z.unknown()).optional(),
    /** Variables the page may set besides the pinned ones. */
    a: z.array(z.string()).optional(),
  }).strict().optional(),
  jti: z.string().min(1),
  exp: z.number(),
  iat: z.number(),
})

/** The tag every run started by a trigger token carries: the token reads its runs through it. */
export const triggerTag = (tokenId: string): string => `rr-token:${tokenId}`
/** Trigger tokens live at most an hour: they start runs, so they stay short. */
export const TRIGGER_TOKEN_MAX_TTL_S = 3600
/** What a trigger token may carry besides its scope (tags, pinned and allowed variables), as JSON: the token stays under the 4 KiB verify() accepts. */
export const TRIGGER_TOKEN_MAX_GRANT_BYTES = 1536

/** What a trigger token is minted with, besides its workflow. */
export interface TriggerMint { workflowId: string; tags?: string[]; pinned?: Record<string, unknown>; allowed?: string[] }

/** Where verify() learns whether a token was revoked (the Store): the minting key, and the tenant's revocations. */
export type TokenStanding = Pick<Store['keys'], 'findById' | 'tokenRevocations'>

/**
 * Whether a token that verified by signature is still in force: its minting key is live (and the
 * tenant's), its id is not revoked, and it was not minted before the tenant's not-before. One
 * function for every place a token is accepted (requests, stream opens, refreshes over a socket,
 * on every runtime). Store faults propagate (a 503), never read as "revoked" or "fine".
 */
export async function tokenInForce(standing: TokenStanding, t: { tenantId: string; tokenId: string; keyId?: string; mintedAt: number }, now: number): Promise<boolean> {
  const [key, revocations]: [Awaited<ReturnType<Store['keys']['findById']>> | null, TokenRevocations] = await Promise.all([
    t.keyId ? standing.findById(t.keyId) : Promise.resolve(null),
    standing.tokenRevocations(t.tenantId, now),
  ])
  if (t.keyId && (!key || key.revokedAt !== null || key.tenantId !== t.tenantId)) return false
  if (t.mintedAt < revocations.notBefore) return false
  return !revocations.ids.has(t.tokenId)
}

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

  /** With `standing`, verify() also refuses revoked tokens (every runtime passes its Store). */
  constructor(private readonly secrets: SecretBox, private readonly now: () => number = Date.now, private readonly standing?: TokenStanding) {}

  private signingKey(): Promise<Uint8Array> {
    return (this.key ??= this.secrets.deriveKey(KEY_PURPOSE))
  }

  /** A signed token for `tenantId` reaching `scope`, valid `ttlSeconds`, minted by key `keyId`. */
  async mint(tenantId: string, scope: TokenScope, ttlSeconds = TOKEN_DEFAULT_TTL_S, trigger?: TriggerMint, keyId?: string): Promise<{ token: string; expiresAt: number; scope: TokenScope; id: string }> {
    const id = newId('tok')
    // A trigger token reads exactly the runs it starts: they carry its tag.
    const s = normalizeScope(trigger ? { tags: [triggerTag(id)] } : scope)
    if (!s.runIds && !s.workflowIds && !s.tags) throw new Error('a subscriber token needs a scope')
    const ttl = Math.max(1, Math.min(trigger ? TRIGGER_TOKEN_MAX_TTL_S : TOKEN_MAX_TTL_S, Math.floor(ttlSeconds)))
    const nowMs = this.now()
    const iat = Math.floor(nowMs / 1000)
    const exp = iat + ttl
    const token = await new SignJWT({
      scope: { ...(s.runIds && { r: s.runIds }), ...(s.workflowIds && { w: s.workflowIds }), ...(s.tags && { t: s.tags }) },
      ...(trigger && { trg: {
        w: trigger.workflowId,
        ...(trigger.tags?.length && { t: [...new Set(trigger.tags)].sort() }),
        ...(trigger.pinned && Object.keys(trigger.pinned).length && { v: trigger.pinned }),
        ...(trigger.allowed && { a: [...new Set(trigger.allowed)].sort() }),
      } }),
      ...(keyId && { key: keyId }),
      iat_ms: nowMs,
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

  /** The token's principal, or null when it is malformed, tampered, expired, revoked (with its key, by id or by time), or signed any other way. */
  async verify(token: string): Promise<TokenPrincipal | null> {
    const p = await this.verifySignature(token)
    if (!p) return null
    return (await this.inForce(p)) ? p : null
  }

  /**
   * Whether a token verified earlier is still in force: not expired, its key live, not revoked
   * by id or by time. An open stream calls it (through StreamRequest.inForce) at each check
   * and closes with 4001, the expiry close code, when it answers false.
   */
  async inForce(p: TokenPrincipal): Promise<boolean> {
    if (p.expiresAt <= this.now()) return false
    return !this.standing || tokenInForce(this.standing, p, this.now())
  }

  private async verifySignature(token: string): Promise<TokenPrincipal | null> {
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
      const { trg, jti, key } = claims.data
      let trigger: TriggerGrant | undefined
      if (trg) {
        // A trigger token's read scope must be exactly its own tag.
        if (scope.runIds || scope.workflowIds || scope.tags?.length !== 1 || scope.tags[0] !== triggerTag(jti)) return null
        trigger = { tokenId: jti, workflowId: trg.w, tag: triggerTag(jti), tags: trg.t ?? [], ...(trg.v && { pinned: trg.v }), ...(trg.a && { allowed: trg.a }) }
      }
      return {
        kind: 'token', tenantId: claims.data.sub, scope, expiresAt: claims.data.exp * 1000, tokenId: jti, mintedAt: claims.data.iat_ms ?? claims.data.iat * 1000,
        ...(key && { keyId: key }), ...(trigger && { trigger }),
      }
    } catch {
      return null
    }
  }
}

/**
 * The body a trigger route starts a run with (the one boundary of what a trigger token may do).
 * For a trigger token: 404 for any workflow but its own; 403 for a tag it was not minted with,
 * for a variable it pins given another value, or for a variable outside its allowed list; its
 * tags, its own rr-token tag and its pinned variables are added. Keys pass unchanged.
 */
export function triggerBodyFor<B extends { tags: string[]; variables: Record<string, unknown> }>(p: Principal, workflowId: string, body: B): B {
  if (p.kind !== 'token') return body
  const g = p.trigger
  if (!g || g.workflowId !== workflowId) throw notFound('workflow')
  // A tag outside the token's would place the run inside another page's tag-scoped token.
  const foreign = body.tags.filter((t) => t !== g.tag && !g.tags.includes(t))
  if (foreign.length) {
    throw new ApiError(403, 'tag_not_allowed', `this trigger token may set only the tags it was minted with${g.tags.length ? ` (${g.tags.join(', ')})` : ' (none)'}`,
      foreign.map((t) => ({ path: 'body.tags', message: `tag ${t} is not among the token's tags` })))
  }
  const pinned = g.pinned ?? {}
  const conflicting = Object.keys(pinned).filter((k) => k in body.variables && !sameJson(body.variables[k], pinned[k]))
  if (conflicting.length) {
    throw new ApiError(403, 'variable_pinned', `this trigger token fixes ${conflicting.join(', ')}: leave ${conflicting.length > 1 ? 'them' : 'it'} out or send the same value`,
      conflicting.map((k) => ({ path: `body.variables.${k}`, message: 'pinned by the token' })))
  }
  if (g.allowed) {
    const outside = Object.keys(body.variables).filter((k) => !(k in pinned) && !g.allowed!.includes(k))
    if (outside.length) {
      throw new ApiError(403, 'variable_not_allowed', `this trigger token may set only ${g.allowed.length ? g.allowed.join(', ') : 'no variables'}`,
        outside.map((k) => ({ path: `body.variables.${k}`, message: 'not allowed by the token' })))
    }
  }
  return { ...body, variables: { ...body.variables, ...pinned }, tags: [...new Set([...body.tags, ...g.tags, g.tag])] }
}

/** Deep equality of two JSON values (key order ignored). */
function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false
  if (Array.isArray(a) !== Array.isArray(b)) return false
  if (Array.isArray(a)) return a.length === (b as unknown[]).length && a.every((v, i) => sameJson(v, (b as unknown[])[i]))
  const ka = Object.keys(a), kb = Object.keys(b)
  return ka.length === kb.length && ka.every((k) => Object.hasOwn(b, k) && sameJson((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]))
}

/** The rate-limit bucket of a verified principal: its key id or its token id, never the credential's text. */
export function limiterKey(p: Principal): string {
  return p.kind === 'token' ? `tok:${p.tenantId}:${p.tokenId}` : `key:${p.keyId}`
}

/** Run `make` (a trigger); for a trigger token, with one run taken from its budget in the database, given back if `make` fails. */
export async function spendTrigger<T>(deps: { store: Store; clock: Clock }, p: Principal, make: () => Promise<T>): Promise<T> {
  if (p.kind !== 'token' || !p.trigger) return make()
  const budget = deps.store.keys.triggerTokens
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
