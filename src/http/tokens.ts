import { jwtVerify, SignJWT } from 'jose'
import * as z from 'zod'
import type { SecretBox } from '../core/crypto.ts'
import { newId } from '../core/crypto.ts'
import type { Principal, TokenScope, TokenVerifier } from './auth.ts'

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
  exp: z.number(),
  iat: z.number(),
})

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
  async mint(tenantId: string, scope: TokenScope, ttlSeconds = TOKEN_DEFAULT_TTL_S): Promise<{ token: string; expiresAt: number; scope: TokenScope }> {
    const s = normalizeScope(scope)
    if (!s.runIds && !s.workflowIds && !s.tags) throw new Error('a subscriber token needs a scope')
    const ttl = Math.max(1, Math.min(TOKEN_MAX_TTL_S, Math.floor(ttlSeconds)))
    const iat = Math.floor(this.now() / 1000)
    const exp = iat + ttl
    const token = await new SignJWT({ scope: { ...(s.runIds && { r: s.runIds }), ...(s.workflowIds && { w: s.workflowIds }), ...(s.tags && { t: s.tags }) } })
      .setProtectedHeader({ alg: TOKEN_ALG, typ: TOKEN_TYP })
      .setIssuer(TOKEN_ISSUER)
      .setAudience(TOKEN_AUDIENCE)
      .setSubject(tenantId)
      .setIssuedAt(iat)
      .setExpirationTime(exp)
      .setJti(newId('tok'))
      .sign(await this.signingKey())
    return { token, expiresAt: exp * 1000, scope: s }
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
      return { kind: 'token', tenantId: claims.data.sub, scope, expiresAt: claims.data.exp * 1000 }
    } catch {
      return null
    }
  }
}
