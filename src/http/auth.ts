import type { Context, MiddlewareHandler } from 'hono'
import { API_KEY_PREFIX, sha256Hex } from '../core/crypto.ts'
import type { Scope } from '../core/domain.ts'
import type { ApiKeyRow, Store } from '../db/store.ts'
import { ApiError } from './errors.ts'

/** A subscriber token's reach: read-only, to some runs, a workflow, or tags. */
export interface TokenScope { runIds?: string[]; workflowIds?: string[]; tags?: string[] }

export type Principal =
  | { kind: 'root'; keyId: string }
  | { kind: 'key'; tenantId: string; keyId: string; scopes: ReadonlySet<string> }
  | { kind: 'token'; tenantId: string; scope: TokenScope; expiresAt: number; trigger?: TriggerGrant
      /** The token's id (`jti`): its rate-limit bucket, and what `POST /v1/tokens/{id}/revoke` names. */
      tokenId: string
      /** The key that minted it (tokens minted before keys were recorded carry none). */
      keyId?: string
      /** When it was minted (ms): a tenant's "revoke all before" compares with it. */
      mintedAt: number }

/**
 * What a trigger token may start: runs of one workflow, within a budget kept in the database,
 * carrying only the tags it was minted with, with the variables it pins and (when `allowed` is
 * set) only those variables besides.
 */
export interface TriggerGrant {
  tokenId: string
  workflowId: string
  tag: string
  /** Tags its runs carry, and the only ones a trigger body may name. */
  tags: string[]
  /** Fixed variables: the page cannot change them. */
  pinned?: Record<string, unknown>
  /** The variables the page may set (besides the pinned ones); undefined: any. */
  allowed?: string[]
}

export interface TokenVerifier {
  verify(token: string): Promise<Extract<Principal, { kind: 'token' }> | null>
  /** Whether a token verified earlier is still in force (not revoked since); for open streams. */
  inForce?(p: Extract<Principal, { kind: 'token' }>): Promise<boolean>
}

export type AuthEnv = { Variables: { principal: Principal; requestId: string } }

/**
 * The credential of a request: `Authorization: Bearer`, `X-API-Key`, or (streams only) a
 * subscriber token in `?token=` or the WebSocket subprotocol. API keys are refused in the URL:
 * URLs end up in access logs, proxies and browser history.
 */
export function credentialOf(c: Context, allowQuery: boolean): string | undefined {
  const auth = c.req.header('authorization')
  if (auth) {
    const m = /^Bearer\s+(.+)$/i.exec(auth.trim())
    return m?.[1]?.trim()
  }
  const key = c.req.header('x-api-key')
  if (key) return key.trim()
  if (allowQuery) {
    const q = c.req.query('token') ?? c.req.query('access_token')
    if (q?.startsWith(API_KEY_PREFIX)) {
      throw new ApiError(401, 'unauthorized', 'API keys are not accepted in the URL: send Authorization: Bearer <key> or X-API-Key, or put a subscriber token (POST /v1/tokens) in ?token=', [], { 'WWW-Authenticate': 'Bearer' })
    }
    if (q) return q
    // Browsers cannot set headers on a WebSocket: the token may come as a subprotocol `runrelay.token.<token>`.
    const proto = c.req.header('sec-websocket-protocol')
    const t = proto?.split(',').map((s) => s.trim()).find((s) => s.startsWith('runrelay.token.'))
    if (t) return t.slice('runrelay.token.'.length)
  }
  return undefined
}

const KEY_TOUCH_INTERVAL_MS = 60_000

/** Who is calling, or a 401. API keys are looked up by their SHA-256; tokens verified by signature. */
export function authenticate(store: Store, tokens: TokenVerifier | undefined, now: () => number) {
  const touched = new Map<string, number>()
  // One principal per key row: the store's read cache hands back the same row object while it
  // holds the key, so its principal (and scope set) is built once, not per request.
  const principals = new WeakMap<ApiKeyRow, Principal>()
  return async (c: Context, allowTokens: boolean): Promise<Principal> => {
    const credential = credentialOf(c, allowTokens)
    if (!credential) throw new ApiError(401, 'unauthorized', 'missing API key: send Authorization: Bearer <key> or X-API-Key', [], { 'WWW-Authenticate': 'Bearer' })
    if (credential.length > 4096) throw new ApiError(401, 'unauthorized', 'invalid API key')
    if (credential.startsWith('rr_')) {
      // Raw keys are not kept in memory beyond the request: hashing is a few µs per request.
      const key = await store.keys.findByHash(await sha256Hex(credential))
      if (!key || key.revokedAt) throw new ApiError(401, 'unauthorized', 'invalid or revoked API key', [], { 'WWW-Authenticate': 'Bearer' })
      // last_used_at is informative: written at most once a minute per key, off the request path.
      const t = now()
      if ((touched.get(key.id) ?? 0) < t - KEY_TOUCH_INTERVAL_MS) {
        touched.set(key.id, t)
        store.keys.touch(key.id, t).catch(() => {})
      }
      let p = principals.get(key)
      if (!p) {
        p = key.tenantId === null ? { kind: 'root', keyId: key.id } : { kind: 'key', tenantId: key.tenantId, keyId: key.id, scopes: new Set(key.scopes) }
        principals.set(key, p)
      }
      return p
    }
    if (allowTokens && tokens) {
      const p = await tokens.verify(credential)
      if (p) return p
    }
    throw new ApiError(401, 'unauthorized', allowTokens ? 'invalid or expired key or token' : 'invalid API key', [], { 'WWW-Authenticate': 'Bearer' })
  }
}

/** Tenant of a principal that must act inside one (the root key manages tenants only). */
export function tenantOf(p: Principal): string {
  if (p.kind === 'root') throw new ApiError(403, 'forbidden', 'the root key manages tenants and keys; use a tenant key')
  return p.tenantId
}

export function requireScope(p: Principal, scope: Scope): void {
  if (p.kind === 'root') throw new ApiError(403, 'forbidden', 'the root key manages tenants and keys; use a tenant key')
  if (p.kind === 'token') {
    if (scope !== 'runs:read') throw new ApiError(403, 'missing_scope', 'subscriber tokens are read-only', [{ scope }])
    return
  }
  if (!p.scopes.has(scope) && !p.scopes.has('admin')) throw new ApiError(403, 'missing_scope', `this key lacks the ${scope} scope`, [{ scope }])
}

export type Authenticate = ReturnType<typeof authenticate>
export type AuthMiddleware = (need: Scope | 'root' | 'root_or_admin', opts?: { tokens?: boolean; triggerTokens?: boolean }) => MiddlewareHandler<AuthEnv>

export function authMiddleware(auth: Authenticate): AuthMiddleware {
  return (need, opts = {}) => async (c, next) => {
    const p = await auth(c, !!opts.tokens || !!opts.triggerTokens)
    // A trigger route lets trigger tokens through; the route checks their workflow and budget.
    if (opts.triggerTokens && p.kind === 'token' && p.trigger) {
      c.set('principal', p)
      return next()
    }
    if (need === 'root') {
      if (p.kind !== 'root') throw new ApiError(403, 'forbidden', 'this route needs the root key')
    } else if (need === 'root_or_admin') {
      if (p.kind !== 'root') requireScope(p, 'admin')
    } else requireScope(p, need)
    c.set('principal', p)
    await next()
  }
}
