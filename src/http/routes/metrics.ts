import type { Context, Hono } from 'hono'
import { sha256Hex } from '../../core/crypto.ts'
import type { AppDeps, RouteContext } from '../context.ts'
import { credentialOf, type AuthEnv } from '../auth.ts'
import { ApiError } from '../errors.ts'

export type { MetricsDeps } from '../context.ts'

/** What the metrics route needs from a runtime (Node and Deno; Workers have none). */
/**
 * GET /metrics: Prometheus text, for the root key or the metrics token. Process-wide figures
 * (every tenant's runs), so tenant keys, even admin ones, get a 403.
 */
export function registerMetricsRoutes(app: Hono<AuthEnv>, deps: AppDeps, { authenticate, documented }: RouteContext): void {
  const metrics = deps.metrics
  if (!metrics) return
  // Compared as hashes: equal-length strings, so the comparison leaks nothing of the token.
  const tokenHash = metrics.token ? sha256Hex(metrics.token) : undefined
  const allowed = async (c: Context): Promise<void> => {
    const credential = credentialOf(c, false)
    if (credential && tokenHash && (await sha256Hex(credential)) === (await tokenHash)) return
    const principal = await authenticate(c, false)
    if (principal.kind !== 'root') throw new ApiError(403, 'forbidden', '/metrics needs the root key or RUNRELAY_METRICS_TOKEN')
  }
  const d = documented({
    method: 'get', path: '/metrics', summary: 'Prometheus metrics of this process (Node, Deno and Bun)', tag: 'meta', auth: 'root', operationId: 'getMetrics',
    description: 'Text exposition format. The root key or RUNRELAY_METRICS_TOKEN as a bearer token; tenant keys get 403 (the figures cover every tenant).',
    contentType: 'text/plain', errors: [403],
  })
  app.get(d.path, async (c) => {
    await allowed(c)
    const { contentType, body } = await metrics.scrape()
    return c.body(body, 200, { 'content-type': contentType, 'cache-control': 'no-store' })
  })
}
