import type { Context } from 'hono'
import { z } from 'zod'
import type { Connector, ConnectorContext, Observation } from '../connectors/types.ts'
import type { RunRow } from '../db/store.ts'
import { jsonBody } from './body.ts'
import { ApiError } from './errors.ts'

// What the two signed callback routes (per run, per connection) share.

export const CallbackQuery = z.object({ sig: z.string().min(1).max(200) })

/** The id in the path when `?sig=` signs it, or a 401. */
export async function signedCallbackId(c: Context, verify: (id: string, sig: string) => Promise<boolean>, what: string): Promise<string> {
  const id = c.req.param('id')!
  const sig = c.req.query('sig')
  if (!sig || !(await verify(id, sig))) throw new ApiError(401, 'invalid_signature', `the callback signature does not match this ${what}`)
  return id
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
