import { header, IdempotencyStore, isObject, nextInScript, startFakeServer, type FakeCommonOptions, type FakeReply, type FakeServer } from './common.ts'

/**
 * Fake Wokelo API (as docs/connectors.md describes it).
 *
 * - POST /auth/token/ {username, password} (JSON or form) → 200 {access, refresh} with a JWT-shaped
 *   token carrying `exp`; wrong credentials → 401 {detail}. (The exchange's shape is not on the page;
 *   the fake answers like Django REST SimpleJWT, which `/auth/token/` suggests.)
 * - Every other route needs `Authorization: <token>` or `Authorization: Bearer <token>` (both are
 *   accepted: the page sends the bare token, the vendor's other pages `Bearer`), with the static
 *   token or an issued, unexpired one; else 401 {detail: "Given token not valid for any token type"}.
 * - POST /api/workflow_manager/start/ → 200 {report_id} (integer, from 86220). 400 when `workflow`
 *   is missing, when a company workflow has neither permalink nor website, when an industry workflow
 *   has no industry_research_topic; 404 for a workflow not in `workflows` (when given).
 * - GET /api/enterprise/request/status/?request_id= → {request_id, status} with PENDING, PROCESSING,
 *   COMPLETED or FAILED (+ `error` when FAILED); 400 without request_id; 404 unknown id.
 * - GET /api/enterprise/request/result/?request_id= → {request_id, status, result} (result null until
 *   COMPLETED).
 * - POST /api/assets/download_report/ {report_id, file_type: pdf|docx|json} → 200 {report_id,
 *   file_type, url} (a link; the real answer's form is not documented); 400 if not COMPLETED or bad
 *   file_type; 404 unknown.
 *
 * Progression: `advance(id, status)` or `script` (each status read moves one step along it).
 * `expireTokens()` makes every issued token invalid (→ 401, forcing a re-exchange).
 */

export interface WokeloReport {
  report_id: number
  status: string
  error?: string
  result?: unknown
  request: Record<string, unknown>
}

export interface FakeWokeloOptions extends FakeCommonOptions {
  username?: string
  password?: string
  /** A static token accepted as is. */
  staticToken?: string
  /** Known workflows and their kind; when absent every workflow id is accepted (kind from its prefix). */
  workflows?: Record<string, 'company' | 'industry'>
  script?: string[]
  /** Lifetime of issued tokens (s). */
  tokenTtlSec?: number
}

export interface FakeWokelo extends FakeServer {
  state: { reports: Map<number, WokeloReport>; triggers: number; tokenExchanges: number; unauthorized: number }
  advance(id: number | string, status: string, patch?: Partial<WokeloReport>): WokeloReport
  expireTokens(): void
}

const b64url = (s: string) => Buffer.from(s).toString('base64url')

export async function startFakeWokelo(opts: FakeWokeloOptions = {}): Promise<FakeWokelo> {
  const username = opts.username ?? 'analyst@example.com'
  const password = opts.password ?? 'secret'
  const reports = new Map<number, WokeloReport>()
  const tokens = new Set<string>()
  const idem = new IdempotencyStore()
  let nextId = 86220
  let triggers = 0
  let tokenExchanges = 0
  let unauthorized = 0
  let tokenSeq = 0

  const kindOf = (wf: string): 'company' | 'industry' | undefined =>
    opts.workflows?.[wf] ?? (wf.startsWith('industry') ? 'industry' : wf.startsWith('comp') ? 'company' : undefined)

  const authorised = (auth: string | undefined) => {
    if (!auth) return false
    const t = auth.startsWith('Bearer ') ? auth.slice(7) : auth
    return (opts.staticToken !== undefined && t === opts.staticToken) || tokens.has(t)
  }

  const server = await startFakeServer(async (req): Promise<FakeReply> => {
    if (req.method === 'POST' && req.path === '/auth/token/') {
      tokenExchanges++
      const b = isObject(req.body) ? req.body : {}
      if (!b.username || !b.password) return { status: 400, body: { username: ['This field is required.'], password: ['This field is required.'] } }
      if (b.username !== username || b.password !== password) return { status: 401, body: { detail: 'No active account found with the given credentials' } }
      const exp = Math.floor(Date.now() / 1000) + (opts.tokenTtlSec ?? 3600)
      const access = `${b64url('{"alg":"HS256","typ":"JWT"}')}.${b64url(JSON.stringify({ token_type: 'access', exp, jti: ++tokenSeq }))}.sig${tokenSeq}`
      tokens.add(access)
      return { status: 200, body: { access, refresh: `refresh-${tokenSeq}` } }
    }
    if (!authorised(header(req, 'authorization'))) {
      unauthorized++
      return { status: 401, body: { detail: 'Given token not valid for any token type', code: 'token_not_valid' } }
    }
    if (req.method === 'POST' && req.path === '/api/workflow_manager/start/') {
      const b = isObject(req.body) ? req.body : {}
      const wf = b.workflow
      if (typeof wf !== 'string' || !wf) return { status: 400, body: { error: 'workflow is required' } }
      if (opts.workflows && !opts.workflows[wf]) return { status: 404, body: { detail: 'Workflow not found.' } }
      const kind = kindOf(wf)
      if (kind === 'company' && !b.permalink && !b.website) return { status: 400, body: { error: "Either of company's permalink or website is required" } }
      if (kind === 'industry' && !b.industry_research_topic) return { status: 400, body: { error: 'industry_research_topic is required' } }
      return idem.handle(req, () => {
        triggers++
        const r: WokeloReport = { report_id: nextId++, status: 'PENDING', request: b }
        reports.set(r.report_id, r)
        return { status: 200, body: { report_id: r.report_id } }
      })
    }
    if (req.method === 'GET' && (req.path === '/api/enterprise/request/status/' || req.path === '/api/enterprise/request/result/')) {
      const id = req.query.get('request_id')
      if (!id) return { status: 400, body: { error: 'request_id is required' } }
      const r = reports.get(Number(id))
      if (!r) return { status: 404, body: { detail: 'Not found.' } }
      if (req.path.endsWith('/status/')) {
        if (opts.script) r.status = nextInScript(opts.script, r.status)
        return { status: 200, body: { request_id: r.report_id, status: r.status, ...(r.status === 'FAILED' ? { error: r.error ?? 'Report generation failed' } : {}) } }
      }
      return { status: 200, body: { request_id: r.report_id, status: r.status, result: r.status === 'COMPLETED' ? r.result ?? { report_id: r.report_id, sections: [] } : null } }
    }
    if (req.method === 'POST' && req.path === '/api/assets/download_report/') {
      const b = isObject(req.body) ? req.body : {}
      const r = reports.get(Number(b.report_id))
      if (!r) return { status: 404, body: { detail: 'Not found.' } }
      if (!['pdf', 'docx', 'json'].includes(String(b.file_type))) return { status: 400, body: { error: 'file_type must be pdf, docx or json' } }
      if (r.status !== 'COMPLETED') return { status: 400, body: { error: 'report is not ready' } }
      return { status: 200, body: { report_id: r.report_id, file_type: b.file_type, url: `${server.url}/files/${r.report_id}.${String(b.file_type)}` } }
    }
    return { status: 404, body: { detail: 'Not found.' } }
  }, opts)

  return Object.assign(server, {
    state: {
      reports,
      get triggers() { return triggers },
      get tokenExchanges() { return tokenExchanges },
      get unauthorized() { return unauthorized },
    },
    advance(id: number | string, status: string, patch?: Partial<WokeloReport>) {
      const r = reports.get(Number(id))
      if (!r) throw new Error(`no report ${id}`)
      r.status = status
      Object.assign(r, patch)
      return r
    },
    expireTokens() {
      tokens.clear()
    },
  })
}
