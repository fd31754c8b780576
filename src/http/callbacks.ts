import type { Context } from 'hono'
import * as z from 'zod'
import type { Connector, ConnectorContext, Observation } from '../connectors/types.ts'
import { isTerminal, type RunStatus } from '../core/domain.ts'
import type { RunRow } from '../db/store.ts'
import { jsonBody } from './body.ts'
import { ApiError } from './errors.ts'

// What the two signed callback routes (per run, per connection) share.

export const CallbackQuery = z.object({ sig: z.string().min(1).max(200) })
/** A run's callback URL also carries its expiry (unix seconds), which the signature covers. */
export const RunCallbackQuery = CallbackQuery.extend({ exp: z.string().regex(/^\d{1,12}$/).describe('expiry of the URL (unix seconds), covered by the signature') })

/** The id in the path when `?sig=` signs it (with the rest of the query), or a 401. */
export async function signedCallbackId(c: Context, verify: (id: string, sig: string, query: Record<string, string>) => Promise<boolean>, what: string): Promise<string> {
  const id = c.req.param('id')!
  const sig = c.req.query('sig')
  if (!sig || !(await verify(id, sig, c.req.query()))) throw new ApiError(401, 'invalid_signature', `the callback signature does not match this ${what}`)
  return id
}

/**
 * A verified run callback URL is still refused (410) once it has expired or its run has
 * finished: a leaked URL cannot rewrite a run's outcome.
 */
export function assertCallbackLive(exp: string, now: number, run: { status: RunStatus; finishedAt: number | null }): void {
  if (Number(exp) * 1000 < now) throw new ApiError(410, 'callback_expired', 'this callback URL has expired')
  if (run.finishedAt !== null || isTerminal(run.status)) throw new ApiError(410, 'callback_spent', `the run is already ${run.status}: its callback URL no longer accepts updates`)
}

/** The callback's JSON body, or a 400. */
export function callbackBody(c: Context): Promise<unknown> {
  return jsonBody(c, 'callback body')
}

/** What a callback says about a run: the connector's reading of it, or the raw body. */
export function callbackObservation(connector: Pick<Connector, 'parseCallback'>, ctx: ConnectorContext, run: RunRow, body: unknown): Observation {
  return connector.parseCallback
    ? connector.parseCallback(ctx, { runId: run.id, upstreamId: run.upstreamId ?? '', state: run.connectorState }, body)
    : { raw: body }
}
