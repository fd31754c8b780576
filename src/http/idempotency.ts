import type { Context } from 'hono'
import { sha256Hex } from '../core/crypto.ts'
import type { AppDeps } from './context.ts'
import type { AuthEnv } from './auth.ts'
import { ApiError } from './errors.ts'

const IDEMPOTENCY_KEY_MAX = 255
/**
 * A claim without an answer younger than this is a request in flight: a retry gets 409 with
 * Retry-After. Older, the retry takes over; where the request reserves its resource's id
 * (runs), the takeover makes that same id, so it cannot make a second one.
 */
export const IN_FLIGHT_MS = 5_000
/** Without a reserved id (tokens), a claim whose request died blocks its key this long. */
const ABANDONED_CLAIM_MS = 60_000

/** How a creating route makes its resource under a reserved id, and finds it again. */
export interface Reserved {
  /** A fresh id for the resource the first request creates. */
  newId(): string
  /** The answer for the resource of `id`, if it exists (it was created, maybe by a request that then failed). */
  find(id: string): Promise<unknown | undefined>
}

/**
 * Stripe's idempotency rules for a creating POST: the same `Idempotency-Key` and body answer
 * the first answer again (header `Idempotent-Replayed: true`, nothing created twice); the same
 * key with another body or route is a 422; a key still in flight is a 409 that a retry resolves;
 * keys are kept `config.idempotencyTtlMs`. With `reserved`, the claim carries the id the
 * resource gets, so a retry at any delay, after any fault, finds or makes that one resource.
 * Without the header, `make` simply runs.
 */
export async function idempotentJson(
  c: Context<AuthEnv>, deps: Pick<AppDeps, 'store' | 'clock' | 'config'>, tenantId: string, body: unknown, status: 201 | 202,
  make: (id?: string) => Promise<unknown>, reserved?: Reserved,
): Promise<Response> {
  const { store, clock } = deps
  const key = c.req.header('idempotency-key')
  if (key === undefined) return c.json(await make() as object, status)
  if (key.length === 0 || key.length > IDEMPOTENCY_KEY_MAX) throw new ApiError(400, 'validation_failed', `Idempotency-Key must be 1..${IDEMPOTENCY_KEY_MAX} characters`)
  const hash = await sha256Hex(`${c.req.method} ${c.req.path} ${JSON.stringify(body)}`)
  const now = clock.now()
  const { claimed, row } = await store.idempotency.claim(tenantId, key, hash, now, deps.config.idempotencyTtlMs, reserved?.newId() ?? null)
  const id = row.resourceId ?? undefined
  const replay = (payload: string, replayStatus: number) => {
    c.header('Idempotent-Replayed', 'true')
    return c.body(payload, replayStatus as 201 | 202, { 'content-type': 'application/json' })
  }
  const answer = async (payload: string) => {
    // The resource exists; an answer not stored is found again by its id, so a fault here costs nothing.
    await store.idempotency.complete(tenantId, key, status, payload).catch(() => {})
    return payload
  }
  if (!claimed) {
    if (row.requestHash !== hash) throw new ApiError(422, 'idempotency_key_mismatch', 'this Idempotency-Key was used with a different request')
    if (row.responseStatus !== null) return replay(row.responseBody ?? '', row.responseStatus)
    if (reserved && id) {
      const existing = await reserved.find(id)
      if (existing !== undefined) return replay(await answer(JSON.stringify(existing)), status)
    }
    const age = now - row.createdAt
    const wait = reserved && id ? IN_FLIGHT_MS : ABANDONED_CLAIM_MS
    if (age < wait) {
      throw new ApiError(409, 'idempotency_key_in_use', 'a request with this Idempotency-Key is still being processed; retry shortly', [], { 'Retry-After': String(Math.max(1, Math.ceil((wait - age) / 1000))) })
    }
    // The first request died before creating anything: this one takes over (with the same id).
    await store.idempotency.touch(tenantId, key, now)
  }
  try {
    const payload = JSON.stringify(await make(id))
    return c.body(await answer(payload), status, { 'content-type': 'application/json' })
  } catch (err) {
    // Created after all (a concurrent takeover won the id, or the fault came after the commit): answer it.
    if (reserved && id) {
      const existing = await reserved.find(id).catch(() => 'unknown' as const)
      if (existing === 'unknown') throw err
      if (existing !== undefined) return replay(await answer(JSON.stringify(existing)), status)
    }
    // Refused before any write (a 4xx): a retry may proceed at once.
    if ((err instanceof ApiError && err.status < 500) || !reserved) {
      await store.idempotency.release(tenantId, key).catch(() => {})
    } else {
      // A fault (the run is not there now, but a write in flight may still land): the claim keeps
      // its reserved id and is marked past the in-flight window, so a retry takes over at once
      // with that same id (a late write and the retry cannot both make a run: one id, one row).
      await store.idempotency.touch(tenantId, key, now - IN_FLIGHT_MS).catch(() => {})
    }
    throw err
  }
}
