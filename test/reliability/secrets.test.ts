/**
 * Secrets stay secret (issue 12, items 7–10): credentials never reach run errors, events, logs
 * or the database in clear; they never follow a redirect to another origin (polls, triggers,
 * the drop-in proxy); API keys are refused in `?token=`; a callback URL is bounded in time and
 * spent once its run has finished.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { startFakeIndigenius } from '../fakes/indigenius.ts'
import { startFakeWokelo } from '../fakes/wokelo.ts'
import { api, createTenant, startTestServer, until, type TestServer } from '../helpers/server.ts'
import { recordFigures } from './figures.ts'

const SECRET = 'sk-live-QUERY-secret-9f8e7d6c5b4a'
const HEADER_SECRET = 'hk-live-HEADER-secret-0a1b2c3d4e'

interface Seen { url: string; headers: IncomingHttpHeaders }

/** A loopback HTTP server answering with `handle`, keeping every request it saw. */
async function serve(handle: (url: URL, body: string, seen: Seen) => { status: number; headers?: Record<string, string>; body?: unknown }): Promise<{ url: string; seen: Seen[]; server: Server }> {
  const seen: Seen[] = []
  const server = createServer((req, res) => {
    let body = ''
    req.on('data', (c) => { body += c })
    req.on('end', () => {
      const s = { url: req.url ?? '/', headers: req.headers }
      seen.push(s)
      const out = handle(new URL(req.url ?? '/', 'http://x'), body, s)
      res.writeHead(out.status, { 'content-type': 'application/json', ...out.headers })
      res.end(out.body === undefined ? '' : JSON.stringify(out.body))
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, server }
}

describe('reliability: secrets', () => {
  let server: TestServer
  let A: Awaited<ReturnType<typeof createTenant>>
  const logs: string[] = []
  const answers: string[] = []
  const servers: Server[] = []
  const figures: Record<string, unknown> = {}
  const keep = async <T extends { server: Server }>(p: Promise<T>): Promise<T> => { const s = await p; servers.push(s.server); return s }

  beforeAll(async () => {
    vi.spyOn(console, 'error').mockImplementation((...args) => { logs.push(args.map(String).join(' ')) })
    server = await startTestServer({ RUNRELAY_LOG: 'debug', RUNRELAY_RATE_LIMIT_PER_MINUTE: '0' })
    A = await createTenant(server, 'secrets')
  }, 30_000)
  afterAll(async () => {
    vi.restoreAllMocks()
    await server?.stop()
    for (const s of servers) s.close()
    recordFigures('secrets', figures)
  })

  const call = async (method: string, path: string, body?: unknown) => {
    const res = await A.client.raw(method, path, body)
    answers.push(JSON.stringify(res.body))
    return res
  }
  const workflowOn = async (baseUrl: string, auth: unknown, credentials: Record<string, string>, config: Record<string, unknown>, policy: Record<string, number> = {}) => {
    const conn = await call('POST', '/v1/connections', { name: 'c', provider: 'http', base_url: baseUrl, config: { auth }, credentials })
    expect(conn.status, JSON.stringify(conn.body)).toBe(201)
    const wf = await call('POST', '/v1/workflows', { name: 'w', connection_id: conn.body.id, upstream_workflow_id: 'jobs', config, poll_policy: { first_interval_ms: 100, max_interval_ms: 200, max_transient_errors: 0, ...policy } })
    expect(wf.status, JSON.stringify(wf.body)).toBe(201)
    return { connectionId: conn.body.id as string, workflowId: wf.body.id as string }
  }
  const finished = async (runId: string) => until(async () => { const r = await call('GET', `/v1/runs/${runId}`); return r.body.finished_at ? r.body : null }, 15_000, `run ${runId} finished`)

  it('item 7: a query or header credential never reaches the run error, its events, the logs or the database', async () => {
    // An upstream that redirects in a loop, keeping the query (so the credential is in every Location).
    const loop = await keep(serve((u) => ({ status: 302, headers: { location: `${u.pathname}${u.search}` } })))
    const q = await workflowOn(loop.url, { type: 'query', param: 'api_key' }, { token: SECRET }, { trigger: { method: 'POST', path: '/jobs' }, status: { path: '/jobs/{{upstream_id}}' } })
    // An upstream whose error answer echoes the header credential back.
    const echo = await keep(serve((_u, _b, s) => ({ status: 401, body: { error: `invalid key ${String(s.headers['x-api-key'])} for ${'https://user:pw@vendor.example/v1?token=abc123'}` } })))
    const h = await workflowOn(echo.url, { type: 'header', header: 'X-Api-Key' }, { token: HEADER_SECRET }, { trigger: { method: 'POST', path: '/jobs' }, status: { path: '/jobs/{{upstream_id}}' } })

    // The drop-in proxy's own error answer: a loop whose Location echoes the vendor key in an ordinary parameter.
    const echoLoop = await keep(serve((u, _b, s) => ({ status: 302, headers: { location: `${u.pathname}?echo=${encodeURIComponent(String(s.headers['x-api-key']))}` } })))
    const wiv = await call('POST', '/v1/connections', { name: 'wiv', provider: 'wiv', base_url: echoLoop.url, credentials: { apiKey: HEADER_SECRET } })
    const proxied = await call('GET', `/v1/connections/${wiv.body.id}/proxy/workflows`)
    expect(proxied.status).toBe(502)
    expect(proxied.body.error.message).toContain('redirects')

    const texts: string[] = [JSON.stringify(proxied.body)]
    for (const wf of [q.workflowId, h.workflowId]) {
      const run = await call('POST', `/v1/workflows/${wf}/runs`, {})
      expect(run.status).toBe(202)
      const final = await finished(run.body.id)
      expect(final.status).toBe('failed')
      const events = await call('GET', `/v1/runs/${run.body.id}/events`)
      texts.push(JSON.stringify(final), JSON.stringify(events.body))
    }
    const all = texts.join('\n')
    // The errors still say what happened.
    expect(all).toContain('redirects')
    expect(all).toContain('api_key=REDACTED')
    expect(all).toContain('invalid key REDACTED')
    for (const s of [SECRET, HEADER_SECRET, 'pw@', 'abc123']) expect(all, s).not.toContain(s)
    // Each upstream did get the credential: it works, it is just never shown.
    expect(loop.seen[0]!.url).toContain(`api_key=${SECRET}`)
    expect(echo.seen[0]!.headers['x-api-key']).toBe(HEADER_SECRET)

    const logText = logs.join('\n')
    for (const s of [SECRET, HEADER_SECRET]) expect(logText, s).not.toContain(s)
    const files = readdirSync(server.dataDir).filter((f) => f.startsWith('runrelay.db'))
    const db = Buffer.concat(files.map((f) => readFileSync(join(server.dataDir, f))))
    for (const s of [SECRET, HEADER_SECRET]) expect(db.includes(Buffer.from(s)), `${s} in the database`).toBe(false)
    figures.redaction = { runs: 2, answer_bytes_scanned: all.length, log_lines_scanned: logs.length, db_bytes_scanned: db.length, secrets_found: 0, loop_requests_with_secret: loop.seen.length }
  }, 40_000)

  // Issue 23 item 2: one boundary for every upstream observation, whatever field the credential comes back in.
  it('issue 23 item 2: a credential echoed in an upstream error (poll and signed callback) never reaches the run, its events, webhooks, logs or the database', async () => {
    const CRED = 'sk_live/Echo+9f8e7d6c5b4a3210'
    const USER = 'ada@example.com'
    const PASS = 'pw-Basic-7e6d5c4b3a'
    const basic = Buffer.from(`${USER}:${PASS}`).toString('base64')
    const echoed = (where: string) => ({
      status: 'failed',
      error: `invalid credentials: Bearer ${CRED}`,
      message: `${where}: checked ${encodeURIComponent(CRED)}`,
      detail: { header: `Basic ${basic}`, list: [`token ${CRED}`], [CRED]: 'as a key' },
    })
    const vendor = await keep(serve((u) => u.pathname === '/jobs' ? { status: 201, body: { id: 'job_echo' } } : { status: 200, body: echoed('poll') }))
    const poll = await workflowOn(vendor.url, { type: 'header', header: 'Authorization', scheme: 'Bearer' }, { token: CRED, username: USER, password: PASS },
      { trigger: { method: 'POST', path: '/jobs' }, status: { path: '/jobs/{{upstream_id}}' }, errorPath: 'error', messagePath: 'message' })
    let cb = ''
    const pusher = await keep(serve((_u, body) => { cb = JSON.parse(body).cb; return { status: 201, body: { id: 'job_push' } } }))
    const push = await workflowOn(pusher.url, { type: 'header', header: 'Authorization', scheme: 'Bearer' }, { token: CRED, username: USER, password: PASS },
      { trigger: { method: 'POST', path: '/jobs', body: { cb: '{{callback_url}}' } }, errorPath: 'error', messagePath: 'message' })
    // A webhook endpoint: what is sent to the tenant's own systems.
    const hooks: string[] = []
    const receiver = await keep(serve((_u, body) => { hooks.push(body); return { status: 200 } }))
    expect((await call('POST', '/v1/webhooks', { url: `${receiver.url}/hook`, events: 'all' })).status).toBe(201)

    const polled = (await call('POST', `/v1/workflows/${poll.workflowId}/runs`, {})).body.id as string
    const pushed = (await call('POST', `/v1/workflows/${push.workflowId}/runs`, {})).body.id as string
    await until(() => cb, 10_000, 'callback URL sent upstream')
    const posted = await fetch(cb.replace(new URL(cb).origin, server.url), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(echoed('callback')) })
    expect(posted.status).toBe(202)
    const texts: string[] = []
    for (const id of [polled, pushed]) {
      const final = await finished(id)
      expect(final.status).toBe('failed')
      // Still says what happened, without the credential.
      expect(final.error.message).toBe('invalid credentials: Bearer REDACTED')
      texts.push(JSON.stringify(final), JSON.stringify((await call('GET', `/v1/runs/${id}/events`)).body))
    }
    await until(() => hooks.filter((h) => h.includes('"failed"')).length >= 2, 15_000, 'webhooks of both failures')
    texts.push(...hooks)
    const all = texts.join('\n')
    expect(all).toContain('REDACTED')
    for (const form of [CRED, encodeURIComponent(CRED), basic, PASS]) expect(all, form).not.toContain(form)
    const files = readdirSync(server.dataDir).filter((f) => f.startsWith('runrelay.db'))
    const db = Buffer.concat(files.map((f) => readFileSync(join(server.dataDir, f))))
    for (const form of [CRED, encodeURIComponent(CRED), basic]) expect(db.includes(Buffer.from(form)), `${form} in the database`).toBe(false)
    for (const form of [CRED, basic]) expect(logs.join('\n'), form).not.toContain(form)
    // The vendor did get the credential.
    expect(vendor.seen[0]!.headers.authorization).toBe(`Bearer ${CRED}`)
    figures.echoed_error = { runs: 2, via: ['poll', 'signed callback'], webhook_bodies: hooks.length, forms: ['bare', 'url-encoded', 'basic base64', 'object key'], found: 0 }
  }, 40_000)

  it('the access token Wokelo issues for the password is redacted like the credentials: run, events, logs, database', async () => {
    const PASS = 'pw-Wokelo-5f4e3d2c1b'
    const fake = await startFakeWokelo({ password: PASS })
    try {
      const conn = await call('POST', '/v1/connections', { name: 'wk', provider: 'wokelo', base_url: fake.url, credentials: { username: 'analyst@example.com', password: PASS } })
      expect(conn.status, JSON.stringify(conn.body)).toBe(201)
      const wf = await call('POST', '/v1/workflows', { name: 'wk', connection_id: conn.body.id, upstream_workflow_id: 'industry_echo', input_template: { industry_research_topic: 'EV' }, poll_policy: { first_interval_ms: 100, max_interval_ms: 200, max_transient_errors: 0 } })
      expect(wf.status, JSON.stringify(wf.body)).toBe(201)
      const run = (await call('POST', `/v1/workflows/${wf.body.id}/runs`, {})).body.id as string
      const reportId = await until(async () => (await call('GET', `/v1/runs/${run}`)).body.upstream_id as string | null, 10_000, 'report started')
      const token = String(fake.requests.find((r) => r.path === '/api/workflow_manager/start/')!.headers.authorization)
      expect(token).toMatch(/^ey/)
      // The vendor echoes the token it was sent in the report's failure (and so in the raw answer).
      fake.advance(reportId, 'FAILED', { error: `report failed for Authorization: ${token}` })
      const final = await finished(run)
      expect(final.status).toBe('failed')
      expect(final.error.message).toBe('report failed for Authorization: REDACTED')
      const all = [JSON.stringify(final), JSON.stringify((await call('GET', `/v1/runs/${run}/events`)).body)].join('\n')
      expect(all).not.toContain(token)
      expect(logs.join('\n')).not.toContain(token)
      const files = readdirSync(server.dataDir).filter((f) => f.startsWith('runrelay.db'))
      const db = Buffer.concat(files.map((f) => readFileSync(join(server.dataDir, f))))
      expect(db.includes(Buffer.from(token)), 'the token in the database').toBe(false)
      figures.derived_token = { runs: 1, exchanges: fake.state.tokenExchanges, found: 0 }
    } finally {
      await fake.close()
    }
  }, 40_000)

  it('item 8: credentials do not follow a redirect to another origin (trigger, poll, proxy)', async () => {
    const elsewhere = await keep(serve(() => ({ status: 200, body: { id: 'job_1', status: 'running' } })))
    // Same-origin hops keep the credentials; the cross-origin one must not carry them.
    const vendor = await keep(serve((u) => {
      if (u.pathname.startsWith('/hop')) return { status: 307, headers: { location: `${elsewhere.url}/landed${u.pathname}${u.search}` } }
      return { status: 307, headers: { location: `/hop${u.pathname}${u.search}` } }
    }))
    const header = await workflowOn(vendor.url, { type: 'header', header: 'X-Api-Key' }, { token: HEADER_SECRET }, { trigger: { method: 'POST', path: '/jobs' }, status: { path: '/jobs/{{upstream_id}}' } })
    const query = await workflowOn(vendor.url, { type: 'query', param: 'access_key' }, { token: SECRET }, { trigger: { method: 'POST', path: '/jobs' }, status: { path: '/jobs/{{upstream_id}}' } })
    for (const wf of [header.workflowId, query.workflowId]) {
      const run = await call('POST', `/v1/workflows/${wf}/runs`, {})
      // Triggered through the redirect, then polled through it a few times.
      await until(async () => { const r = await call('GET', `/v1/runs/${run.body.id}`); if (r.body.finished_at) throw new Error(JSON.stringify(r.body)); return elsewhere.seen.filter((s) => s.url.startsWith('/landed/hop/jobs/job_1')).length >= 2 * (wf === header.workflowId ? 1 : 2) }, 10_000, 'polls landed')
      await call('POST', `/v1/runs/${run.body.id}/cancel`, {})
    }
    // The drop-in proxy (a Wiv connection: X-API-KEY) through the same redirect.
    const wiv = await call('POST', '/v1/connections', { name: 'wiv', provider: 'wiv', base_url: vendor.url, credentials: { apiKey: HEADER_SECRET } })
    const proxied = await call('GET', `/v1/connections/${wiv.body.id}/proxy/workflows`)
    expect(proxied.status).toBe(200)
    // The first origin saw the credentials on both of its hops.
    expect(vendor.seen.some((s) => s.headers['x-api-key'] === HEADER_SECRET && s.url.startsWith('/hop'))).toBe(true)
    expect(vendor.seen.some((s) => s.url.includes(SECRET) && s.url.startsWith('/hop'))).toBe(true)
    expect(elsewhere.seen.length).toBeGreaterThanOrEqual(5)
    for (const s of elsewhere.seen) {
      const text = JSON.stringify(s)
      expect(text, s.url).not.toContain(HEADER_SECRET)
      expect(text, s.url).not.toContain(SECRET)
    }
    figures.cross_origin = { same_origin_requests_with_credentials: vendor.seen.length, cross_origin_requests: elsewhere.seen.length, cross_origin_with_credentials: 0, via: ['trigger', 'poll', 'proxy'] }
  }, 40_000)

  it('item 9: an API key in ?token= is refused; a subscriber token there still works', async () => {
    const { workflowId } = await workflowOn('http://127.0.0.1:9', { type: 'none' }, {}, { trigger: { method: 'POST', path: '/jobs' } }, { deadline_ms: 60_000 })
    const run = await call('POST', `/v1/workflows/${workflowId}/runs`, { scheduled_at: new Date(Date.now() + 3_600_000).toISOString() })
    expect(run.status, JSON.stringify(run.body)).toBe(202)
    const byKey = await api(server.url).get(`/v1/runs/${run.body.id}/events?token=${A.key}`)
    expect(byKey.status).toBe(401)
    expect(byKey.body.error.code).toBe('unauthorized')
    expect(JSON.stringify(byKey.body)).not.toContain(A.key)
    const token = (await call('POST', '/v1/tokens', { run_ids: [run.body.id] })).body.token as string
    expect((await api(server.url).get(`/v1/runs/${run.body.id}/events?token=${token}`)).status).toBe(200)
    // Headers keep working for keys.
    expect((await api(server.url, A.key).get(`/v1/runs/${run.body.id}/events`)).status).toBe(200)
    await call('POST', `/v1/runs/${run.body.id}/cancel`, {})
  })

  it('item 10: a callback URL is spent once its run has finished, and a tampered expiry is refused', async () => {
    let callbackUrl = ''
    const vendor = await keep(serve((_u, body) => { callbackUrl = JSON.parse(body).cb; return { status: 201, body: { id: 'push_1' } } }))
    const { workflowId } = await workflowOn(vendor.url, { type: 'none' }, {}, { trigger: { method: 'POST', path: '/jobs', body: { cb: '{{callback_url}}' } } })
    const run = await call('POST', `/v1/workflows/${workflowId}/runs`, {})
    await until(() => callbackUrl, 10_000, 'callback URL sent upstream')
    const url = new URL(callbackUrl)
    expect(url.searchParams.get('exp')).toMatch(/^\d+$/)
    const post = (u: string, body: unknown) => fetch(u.replace(url.origin, server.url), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
    // A later expiry with the same signature does not verify.
    const stretched = new URL(callbackUrl)
    stretched.searchParams.set('exp', String(Number(url.searchParams.get('exp')) + 86_400 * 365))
    expect((await post(stretched.href, { status: 'completed' })).status).toBe(401)
    const noExp = new URL(callbackUrl)
    noExp.searchParams.delete('exp')
    expect((await post(noExp.href, { status: 'completed' })).status).toBe(401)
    // The real one works once for the terminal status…
    expect((await post(callbackUrl, { status: 'completed', result: { ok: 1 } })).status).toBe(202)
    const final = await finished(run.body.id)
    expect(final.status).toBe('completed')
    // …and a forged later failure with the leaked URL is refused and changes nothing.
    const forged = await post(callbackUrl, { status: 'failed', error: 'forged' })
    expect(forged.status).toBe(410)
    expect(((await forged.json()) as any).error.code).toBe('callback_spent')
    expect((await call('GET', `/v1/runs/${run.body.id}`)).body.status).toBe('completed')
    figures.callback_url = { stretched_exp: 401, missing_exp: 401, first_terminal: 202, forged_after_finish: forged.status, exp_after_deadline_s: Number(url.searchParams.get('exp')) - Math.floor(Date.parse(final.deadline_at) / 1000) }
  })

  it('items 11, 12: cancelling one Indigenius run leaves a concurrent run alone, and the last run to end restores the workflow\'s own callback', async () => {
    const WF = '665e4a34c65bb95f2f2d7abc'
    const own = { callbackUrl: 'https://client.example.com/hooks/workflow', webhook: { url: 'https://client.example.com/hooks/workflow', secret: 'whsec_own' } }
    const ind = await startFakeIndigenius({ workflows: [{ _id: WF, title: 'Shared', ...own }], push: false })
    servers.push({ close: () => void ind.close() } as unknown as Server)
    const conn = await call('POST', '/v1/connections', { name: 'ind', provider: 'indigenius', base_url: ind.url, credentials: { apiKey: 'ind-key' } })
    const wf = await call('POST', '/v1/workflows', { name: 'ind', connection_id: conn.body.id, upstream_workflow_id: WF, poll_policy: { first_interval_ms: 200, max_interval_ms: 300 } })
    const a = (await call('POST', `/v1/workflows/${wf.body.id}/runs`, {})).body.id as string
    const b = (await call('POST', `/v1/workflows/${wf.body.id}/runs`, {})).body.id as string
    const upstreamOf = (id: string) => until(async () => (await call('GET', `/v1/runs/${id}`)).body.upstream_id as string | null, 10_000, `${id} triggered`)
    const [jobA, jobB] = [await upstreamOf(a), await upstreamOf(b)]
    expect(ind.state.workflows.get(WF)!.webhook).toMatchObject({ secret: 'whsec_own' })

    const canceled = await call('POST', `/v1/runs/${a}/cancel`, {})
    expect(canceled.status).toBe(200)
    expect((await call('GET', `/v1/runs/${a}`)).body.status).toBe('canceled')
    const command = (await call('GET', `/v1/runs/${a}/events`)).body.events.find((e: any) => e.type === 'run.command')
    expect(command.data).toMatchObject({ command: 'cancel', upstream: 'skipped' })
    expect(command.data.upstream_note).toContain(b)
    expect(ind.count('POST', `/v1/workflows/${WF}/cancel`)).toBe(0)
    expect(ind.state.jobs.get(jobB)!.state).not.toBe('cancelled')
    // B goes on and completes; being the last, its end puts the workflow's own targets back.
    await ind.advance(jobB, 'completed')
    expect((await finished(b)).status).toBe('completed')
    await until(() => ind.state.workflows.get(WF)!.callbackUrl === own.callbackUrl, 5_000, 'callback restored')
    expect(ind.state.workflows.get(WF)).toMatchObject(own)
    expect(ind.state.jobs.get(jobA)!.state).toBe('queued')
  }, 30_000)

  it('item 14: an Interactly workflow with a flat input template is refused with a 400 at creation and on update', async () => {
    const conn = await call('POST', '/v1/connections', { name: 'ix', provider: 'interactly', base_url: 'http://127.0.0.1:9', credentials: { apiKey: 'ix' } })
    const flat = await call('POST', '/v1/workflows', { name: 'ix', connection_id: conn.body.id, upstream_workflow_id: '5eb7cf5a86d9755df3a6c593', input_template: { greeting: 'Hello {{customer}}' } })
    expect(flat.status).toBe(400)
    expect(flat.body.error).toMatchObject({ code: 'validation_failed' })
    expect(flat.body.error.details[0].path).toBe('body.input_template')
    const ok = await call('POST', '/v1/workflows', { name: 'ix', connection_id: conn.body.id, upstream_workflow_id: '5eb7cf5a86d9755df3a6c593', input_template: { dynamic_variables: { greeting: 'Hello {{customer}}' } } })
    expect(ok.status).toBe(201)
    expect((await call('PATCH', `/v1/workflows/${ok.body.id}`, { input_template: { greeting: 'x' } })).status).toBe(400)
    expect((await call('GET', `/v1/workflows/${ok.body.id}`)).body.input_template).toEqual({ dynamic_variables: { greeting: 'Hello {{customer}}' } })
  })
})
