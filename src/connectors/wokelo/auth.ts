import * as z from 'zod'
import { getPath, joinUrl, requestJson, type UpstreamContext, type UpstreamRequest, type UpstreamResponse } from '../request.ts'
import { finalError, messageOf, rewrap } from '../shared.ts'
import { addDerivedSecret, UpstreamError, type ConnectorContext } from '../types.ts'

/**
 * Talking to Wokelo: the JWT (given, or exchanged for a username and password and cached per
 * connection), one re-authentication on 401, and the vendor's retry rules for 429 and 5xx.
 */

// ---------------------------------------------------------------- auth

/** The connection options auth reads (part of Wokelo's connection config). */
export const AuthOptions = z.object({
  /** `bearer` sends `Bearer <token>`; the default is the bare token, as Wokelo's API reference sends it. */
  authScheme: z.enum(['bearer', 'bare']).optional(),
  /** Dotted path of the token in the /auth/token/ answer (else `access`, `token`, `access_token`…). */
  tokenPath: z.string().optional(),
})

/** A call's context as auth sees it: the auth options typed, the workflow config not read. */
type AuthCtx = ConnectorContext<z.infer<typeof AuthOptions>, unknown>

interface CachedToken { token: string; exp?: number }

const tokenKey = (ctx: UpstreamContext) => `wokelo:token:${ctx.connection.id}`

function jwtExp(token: string): number | undefined {
  const part = token.split('.')[1]
  if (!part) return undefined
  try {
    const json = atob(part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '='))
    const exp = (JSON.parse(json) as { exp?: unknown }).exp
    return typeof exp === 'number' ? exp * 1000 : undefined
  } catch {
    return undefined
  }
}

/** Whether the connection has a username and password to exchange for a token. */
export const canExchange = (ctx: UpstreamContext) => !!ctx.connection.credentials.username && !!ctx.connection.credentials.password

async function exchange(ctx: AuthCtx): Promise<CachedToken> {
  const key = tokenKey(ctx)
  const pending = (async (): Promise<CachedToken> => {
    let res: UpstreamResponse
    try {
      res = await requestJson(ctx, joinUrl(ctx.connection.baseUrl, '/auth/token/'), {
        method: 'POST',
        body: { username: ctx.connection.credentials.username, password: ctx.connection.credentials.password },
      })
    } catch (err) {
      if (err instanceof UpstreamError && !err.transient) {
        throw rewrap(err, { code: 'upstream_auth_failed', message: `Wokelo rejected the username/password at /auth/token/ (${err.status})${messageOf(err.body) ? `: ${messageOf(err.body)}` : ''}` })
      }
      throw err
    }
    const path = ctx.connection.config.tokenPath
    const candidates = path ? [getPath(res.body, path)] : ['access', 'token', 'access_token', 'data.access', 'data.token'].map((p) => getPath(res.body, p))
    const token = candidates.find((t): t is string => typeof t === 'string' && t.length > 0)
    if (!token) throw finalError('upstream_auth_failed', 'Wokelo /auth/token/ answered without a token', { status: res.status })
    // The token is as secret as the password it was exchanged for: redacted like the credentials from now on.
    addDerivedSecret(ctx, token)
    return { token, exp: jwtExp(token) }
  })()
  ctx.cache.set(key, pending)
  try {
    return await pending
  } catch (err) {
    if (ctx.cache.get(key) === pending) ctx.cache.delete(key)
    throw err
  }
}

/** The token to send: the cached exchanged one while it is valid, the static one, or a new exchange (`renew` forces one). */
export async function getToken(ctx: AuthCtx, renew: boolean): Promise<string> {
  const key = tokenKey(ctx)
  if (!renew) {
    const cached = ctx.cache.get(key) as Promise<CachedToken> | undefined
    if (cached) {
      try {
        const t = await cached
        if (t.exp === undefined || t.exp > ctx.now() + 30_000) return t.token
      } catch { /* fall through to a new exchange */ }
    }
    if (ctx.connection.credentials.token && !cached) return ctx.connection.credentials.token
  }
  if (!canExchange(ctx)) {
    if (ctx.connection.credentials.token) return ctx.connection.credentials.token
    throw finalError('upstream_auth_failed', 'no Wokelo token and no username/password to obtain one')
  }
  return (await exchange(ctx)).token
}

/** The Authorization header for `token`, bare or `Bearer` per the connection's authScheme. */
export function authHeader(ctx: AuthCtx, token: string): Record<string, string> {
  return { Authorization: ctx.connection.config.authScheme === 'bearer' ? `Bearer ${token}` : token }
}

/** requestJson with the JWT, one re-authentication on 401, and the vendor's retry rules applied. */
export async function wokeloRequest<T = unknown>(ctx: AuthCtx, path: string, req: UpstreamRequest, retryKey: string): Promise<UpstreamResponse<T>> {
  const url = joinUrl(ctx.connection.baseUrl, path)
  try {
    let token = await getToken(ctx, false)
    let res: UpstreamResponse<T>
    try {
      res = await requestJson<T>(ctx, url, { ...req, headers: { ...req.headers, ...authHeader(ctx, token) } })
    } catch (err) {
      if (!(err instanceof UpstreamError) || err.status !== 401 || !canExchange(ctx)) throw err
      token = await getToken(ctx, true)
      res = await requestJson<T>(ctx, url, { ...req, headers: { ...req.headers, ...authHeader(ctx, token) } })
    }
    ctx.cache.delete(rateLimitKey(ctx))
    ctx.cache.delete(serverErrorKey(retryKey))
    return res
  } catch (err) {
    throw applyRetryRules(ctx, err, retryKey)
  }
}

const RETRY_LIMITS: Record<number, number> = { 500: 3, 502: 5, 503: 5 }

/** ctx.cache counters: consecutive 429s on the connection, consecutive 5xx of one trigger or poll. */
const rateLimitKey = (ctx: UpstreamContext) => `wokelo:429:${ctx.connection.id}`
const serverErrorKey = (retryKey: string) => `wokelo:5xx:${retryKey}`

function bump(ctx: UpstreamContext, key: string): number {
  const n = ((ctx.cache.get(key) as number | undefined) ?? 0) + 1
  ctx.cache.set(key, n)
  return n
}

function applyRetryRules(ctx: UpstreamContext, err: unknown, retryKey: string): unknown {
  if (!(err instanceof UpstreamError) || err.code === 'upstream_auth_failed') return err
  if (err.status === 401) return rewrap(err, { code: 'upstream_unauthorized', message: `Wokelo refused the token (401)${canExchange(ctx) ? ' even after re-authenticating' : ''}` })
  if (err.status === 403) return rewrap(err, { code: 'upstream_forbidden' })
  if (err.status === 404) return rewrap(err, { code: 'upstream_not_found' })
  if (err.status === 429) {
    const n = bump(ctx, rateLimitKey(ctx))
    const backoff = Math.min(60_000, 1_000 * 2 ** (n - 1))
    return rewrap(err, { notBefore: err.notBefore ?? ctx.now() + backoff })
  }
  const limit = err.status !== undefined ? RETRY_LIMITS[err.status] : undefined
  if (limit !== undefined) {
    const key = serverErrorKey(retryKey)
    const n = bump(ctx, key)
    if (n > limit) {
      ctx.cache.delete(key)
      return rewrap(err, { transient: false, code: 'upstream_retries_exhausted', message: `${err.message} (Wokelo ${err.status} retried ${limit} times)` })
    }
  }
  return err
}
