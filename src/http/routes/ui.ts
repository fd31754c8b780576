import type { Context, Hono } from 'hono'
import { randomBytes, toBase64Url } from '../../core/crypto.ts'
import type { AppDeps, RouteContext } from '../app.ts'
import type { AuthEnv } from '../auth.ts'
import { documented } from '../openapi.ts'
import { DASHBOARD_HTML } from '../ui/dashboard.ts'
import { DOCS_HTML } from '../ui/docs.ts'

/** A page with a strict CSP: only its own nonce-tagged inline script and style run; it talks to this origin only. */
function page(c: Context, html: string): Response {
  const nonce = toBase64Url(randomBytes(16))
  c.header('content-security-policy', [
    "default-src 'none'", `script-src 'nonce-${nonce}'`, `style-src 'nonce-${nonce}'`, "connect-src 'self'", "img-src 'self' data:",
    "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'",
  ].join('; '))
  c.header('x-content-type-options', 'nosniff')
  c.header('referrer-policy', 'no-referrer')
  c.header('cache-control', 'no-store')
  return c.html(html.replaceAll('__NONCE__', nonce))
}

/** `GET /` (live dashboard) and `GET /docs` (API reference): self-contained pages, the same on every runtime. */
export function registerUiRoutes(app: Hono<AuthEnv>, _deps: AppDeps, _ctx: RouteContext): void {
  let d = documented({ method: 'get', path: '/', summary: 'Live dashboard (HTML; sign in with a key or a subscriber token)', tag: 'meta', auth: 'none', operationId: 'getDashboard', contentType: 'text/html' })
  app.get(d.path, (c) => page(c, DASHBOARD_HTML))
  d = documented({ method: 'get', path: '/docs', summary: 'API reference (HTML rendering of /openapi.json)', tag: 'meta', auth: 'none', operationId: 'getDocs', contentType: 'text/html' })
  app.get(d.path, (c) => page(c, DOCS_HTML))
}
