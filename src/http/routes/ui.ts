import type { Context, Hono } from 'hono'
import { randomBytes, toBase64Url } from '../../core/crypto.ts'
import type { AppDeps, RouteContext } from '../context.ts'
import type { AuthEnv } from '../auth.ts'
import { DASHBOARD_HTML } from '../ui/dashboard.ts'
import { DOCS_HTML } from '../ui/docs.ts'
import { EMBED_JS, EMBED_JS_HASH } from '../ui/embed.generated.ts'

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

/** `GET /` (live dashboard), `GET /docs` (API reference) and `GET /embed.js` (the custom elements): self-contained, the same on every runtime. */
export function registerUiRoutes(app: Hono<AuthEnv>, _deps: AppDeps, { documented }: RouteContext): void {
  let d = documented({ method: 'get', path: '/', summary: 'Live dashboard (HTML; sign in with a key or a subscriber token)', tag: 'meta', auth: 'none', operationId: 'getDashboard', contentType: 'text/html' })
  app.get(d.path, (c) => page(c, DASHBOARD_HTML))
  d = documented({ method: 'get', path: '/docs', summary: 'API reference (HTML rendering of /openapi.json)', tag: 'meta', auth: 'none', operationId: 'getDocs', contentType: 'text/html' })
  app.get(d.path, (c) => page(c, DOCS_HTML))
  d = documented({ method: 'get', path: '/embed.js', summary: 'The <runrelay-run> and <runrelay-runs> custom elements as one script, for pages with no build step', tag: 'meta', auth: 'none', operationId: 'getEmbedScript', contentType: 'text/javascript' })
  app.get(d.path, (c) => embedScript(c))
}

/**
 * `/embed.js`: any page may load it (cross-origin, also as a module script); it runs no eval
 * and styles through constructed stylesheets, so it works under a strict CSP. Its ETag is the
 * hash of the build, so browsers revalidate cheaply and pick up a new build at once.
 */
function embedScript(c: Context): Response {
  const etag = `"${EMBED_JS_HASH}"`
  const headers = {
    'content-type': 'text/javascript; charset=utf-8', 'x-content-type-options': 'nosniff', 'access-control-allow-origin': '*',
    'cross-origin-resource-policy': 'cross-origin', 'cache-control': 'public, max-age=300, must-revalidate', etag,
  }
  if (c.req.header('if-none-match') === etag) return new Response(null, { status: 304, headers })
  return new Response(EMBED_JS, { status: 200, headers })
}
