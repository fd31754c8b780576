import type { Context, MiddlewareHandler } from 'hono'
import { jsonTooDeep, MAX_JSON_DEPTH } from '../core/json.ts'
import { ApiError } from './errors.ts'

/** The 400 for a body nested deeper than MAX_JSON_DEPTH. */
export const jsonTooDeepError = (where = 'request body') =>
  new ApiError(400, 'json_too_deep', `${where} is nested deeper than ${MAX_JSON_DEPTH} levels`, [{ path: 'body', message: `nesting deeper than ${MAX_JSON_DEPTH}` }])

/**
 * Refuse a request body nested too deep before anything parses it. The text is read once
 * (through the body limit) and cached by Hono, so the validator's c.req.json() reuses it.
 */
export async function assertJsonDepth(c: Context, where?: string): Promise<string> {
  const text = await c.req.text()
  if (jsonTooDeep(text)) throw jsonTooDeepError(where)
  return text
}

/** Middleware form of assertJsonDepth, in front of every JSON body validator. */
export const jsonDepthGuard: MiddlewareHandler = async (c, next) => {
  await assertJsonDepth(c)
  await next()
}

/** The body as JSON, or a 400: malformed (`malformed_request`, naming `what`) or nested too deep. */
export async function jsonBody(c: Context, what: string): Promise<unknown> {
  const text = await assertJsonDepth(c, what)
  try {
    return JSON.parse(text)
  } catch {
    throw new ApiError(400, 'malformed_request', `${what} must be JSON`)
  }
}
