import type { MiddlewareHandler } from 'hono'

/**
 * One JSON log line per request once it is answered (RUNRELAY_LOG=debug): its request id,
 * method, path (never the query string: tokens and signatures travel there), status and time.
 */
export function accessLog(log: (msg: string, extra?: Record<string, unknown>) => void): MiddlewareHandler {
  return async (c, next) => {
    const started = performance.now()
    await next()
    log('request', { request_id: c.get('requestId'), method: c.req.method, path: c.req.path, status: c.res.status, ms: Math.round((performance.now() - started) * 10) / 10 })
  }
}
