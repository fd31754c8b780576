import type { Context } from 'hono'
import { sha256Hex } from '../core/crypto.ts'
import type { AppDeps } from './context.ts'
import type { AuthEnv } from './auth.ts'
import { ApiError, conflict } from './errors.ts'

const IDEMPOTENCY_KEY_MAX = 255

/**
 * Stripe's idempotency rules for a creating POST: the same `Idempotency-Key` and body answer
 * the first answer again (header `Idempotent-Replayed: true`, nothing created twice); the same
 * key with another body or route is a 422; a key still in flight is a 409; keys are kept
 * `config.idempotencyTtlMs`. Without the header, `make` simply runs.
 */
export async function idempotentJson(
  c: Context<AuthEnv>, deps: Pick<AppDeps, 'store' | 'clock' | 'config'>, tenantId: string, body: unknown, status: 201 | 202, make: () => Promise<unknown>,
): Promise<Response> {
  const { store, clock } = deps
  const key = c.req.header('idempotency-key')
  if (key === undefined) return c.json(await make() as object, status)
  if (key.length === 0 || key.length > IDEMPOTENCY_KEY_MAX) throw new ApiError(400, 'validation_failed', `Idempotency-Key must be 1..${IDEMPOTENCY_KEY_MAX} characters`)
  const hash = await sha256Hex(`${c.req.method} ${c.req.path} ${JSON.stringify(body)}`)
  const claim = await store.claimIdempotencyKey(tenantId, key, hash, clock.now(), deps.config.idempotencyTtlMs)
  if (claim !== 'claimed') {
    if (claim.requestHash !== hash) throw new ApiError(422, 'idempotency_key_mismatch', 'this Idempotency-Key was used with a different request')
    if (claim.responseStatus === null) throw conflict('idempotency_key_in_use', 'a request with this Idempotency-Key is still being processed')
    c.header('Idempotent-Replayed', 'true')
    return c.body(claim.responseBody ?? '', claim.responseStatus as 201 | 202, { 'content-type': 'application/json' })
  }
  try {
    const payload = JSON.stringify(await make())
    await store.completeIdempotencyKey(tenantId, key, status, payload)
    return c.body(payload, status, { 'content-type': 'application/json' })
  } catch (err) {
    // A failed request may be retried with the same key.
    await store.releaseIdempotencyKey(tenantId, key)
    throw err
  }
}
