import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { wokeloConnector as wk } from '../../../src/connectors/wokelo/index.ts'
import { secretValues } from '../../../src/connectors/types.ts'
import { DEFAULT_POLL_POLICY } from '../../../src/core/domain.ts'
import { formsOf } from '../../../src/core/observe.ts'
import { shownObservation } from '../../../src/core/redact-upstream.ts'
import { startFakeWokelo, type FakeWokelo } from '../../fakes/wokelo.ts'
import { expectOneJobPerRunId, makeCtx, ref, rejection, trig } from './context.ts'

const INDUSTRY = 'industry_custom_fc44748'
const COMPANY = 'comp_research_f312g'

describe('wokelo connector', () => {
  let fake: FakeWokelo
  beforeAll(async () => { fake = await startFakeWokelo({ staticToken: 'static-jwt' }) })
  afterAll(async () => { await fake.close() })

  const withToken = (over: Partial<Parameters<typeof makeCtx>[0]> = {}) =>
    makeCtx({ provider: 'wokelo', baseUrl: fake.url, credentials: { token: 'static-jwt' }, upstreamWorkflowId: INDUSTRY, ...over })
  const withPassword = (over: Partial<Parameters<typeof makeCtx>[0]> = {}) =>
    makeCtx({ provider: 'wokelo', baseUrl: fake.url, credentials: { username: 'analyst@example.com', password: 'secret' }, upstreamWorkflowId: INDUSTRY, ...over })

  it('validates credentials: a token, or username and password', () => {
    expect(wk.credentials.safeParse({ token: 't' }).success).toBe(true)
    expect(wk.credentials.safeParse({ username: 'u', password: 'p' }).success).toBe(true)
    expect(wk.credentials.safeParse({ username: 'u' }).success).toBe(false)
    expect(wk.credentials.safeParse({}).success).toBe(false)
    expect(wk.workflowConfig.safeParse({ statusRequest: { method: 'POST', statusMap: { DONE: 'completed' } } }).success).toBe(true)
    expect(wk.workflowConfig.safeParse({ statusRequest: { statusMap: { DONE: 'finished' } } }).success).toBe(false)
  })

  it('follows the vendor polling guidance', () => {
    expect(wk.defaultPollPolicy).toEqual({ firstIntervalMs: 60_000, maxIntervalMs: 60_000, deadlineMs: 90 * 60_000 })
    expect(wk.commands).toBeUndefined()
  })

  it('starts an industry workflow with the bare static token (the page\'s Authorization: <token>); report_id is the upstream id', async () => {
    const r = await wk.trigger(withToken(), trig({ industry_research_topic: 'Electric vehicles', workbook_name: 'EV 2026' }))
    expect(r.upstreamId).toMatch(/^\d+$/)
    expect(r).toMatchObject({ status: 'queued', raw: { report_id: Number(r.upstreamId) } })
    const last = fake.requests.at(-1)!
    expect(last.headers.authorization).toBe('static-jwt')
    expect(fake.state.reports.get(Number(r.upstreamId))!.request).toEqual({ workflow: INDUSTRY, industry_research_topic: 'Electric vehicles', workbook_name: 'EV 2026' })
  })

  it('sends Bearer <token> when authScheme is bearer; bare explicitly is the default', async () => {
    await wk.trigger(withToken({ connectionConfig: { authScheme: 'bearer' } }), trig({ industry_research_topic: 'EV' }))
    expect(fake.requests.at(-1)!.headers.authorization).toBe('Bearer static-jwt')
    await wk.trigger(withToken({ connectionConfig: { authScheme: 'bare' } }), trig({ industry_research_topic: 'EV' }))
    expect(fake.requests.at(-1)!.headers.authorization).toBe('static-jwt')
  })

  it('sends permalink, website, custom_files for company workflows and config defaults', async () => {
    const c = withToken({ upstreamWorkflowId: COMPANY, workflowConfig: { workbook_name: 'Default book' } })
    const files = [{ fileName: 'deck.pdf' }]
    const r = await wk.trigger(c, trig({ permalink: 'acme', website: 'https://acme.com', custom_files: files, ignored: 1 }))
    expect(fake.state.reports.get(Number(r.upstreamId))!.request).toEqual({ workflow: COMPANY, permalink: 'acme', website: 'https://acme.com', custom_files: files, workbook_name: 'Default book' })
  })

  it('validates the company / industry rules before calling (final invalid_input)', async () => {
    const before = fake.count('POST', '/api/workflow_manager/start/')
    expect(await rejection(wk.trigger(withToken({ upstreamWorkflowId: COMPANY }), trig({ industry_research_topic: 'x' })))).toMatchObject({ code: 'invalid_input', transient: false })
    expect(await rejection(wk.trigger(withToken({ upstreamWorkflowId: INDUSTRY }), trig({ website: 'x' })))).toMatchObject({ code: 'invalid_input', transient: false })
    expect(await rejection(wk.trigger(withToken({ upstreamWorkflowId: 'abc', workflowConfig: { kind: 'company' } }), trig({})))).toMatchObject({ code: 'invalid_input' })
    expect(await rejection(wk.trigger(withToken({ upstreamWorkflowId: 'abc' }), trig({})))).toMatchObject({ code: 'invalid_input' })
    expect(await rejection(wk.trigger(withToken(), trig({ industry_research_topic: 'x', custom_files: 'a.pdf' })))).toMatchObject({ code: 'invalid_input' })
    expect(fake.count('POST', '/api/workflow_manager/start/')).toBe(before)
    // kind from config overrides the prefix: a company-kind workflow with a website goes through
    await wk.trigger(withToken({ upstreamWorkflowId: 'custom_x', workflowConfig: { kind: 'company' } }), trig({ website: 'acme.com' }))
  })

  it('exchanges username/password once and caches the token per connection', async () => {
    const cache = new Map<string, unknown>()
    const before = fake.state.tokenExchanges
    await wk.trigger(withPassword({ cache }), trig({ industry_research_topic: 'EV' }))
    await wk.trigger(withPassword({ cache }), trig({ industry_research_topic: 'EV' }))
    expect(fake.state.tokenExchanges).toBe(before + 1)
    expect([...cache.keys()]).toContain('wokelo:token:conn_test')
    expect(fake.requests.at(-1)!.headers.authorization).toMatch(/^ey/)
  })

  it('redacts the exchanged access token like the credentials: in upstream errors, and at the boundary of what is stored', async () => {
    const cache = new Map<string, unknown>()
    const c = withPassword({ cache })
    const r = await wk.trigger(c, trig({ industry_research_topic: 'EV' }))
    const token = String(fake.requests.at(-1)!.headers.authorization)
    expect(token).toMatch(/^ey/)
    // Derived from the password: one of the connection's secret values from now on (all contexts share the cache).
    expect(secretValues(c)).toContain(token)
    expect(secretValues(withPassword({ cache }))).toContain(token)
    expect(secretValues(withPassword())).not.toContain(token)

    // An error answer echoing the token (a connection test and the proxy show such errors as they are thrown).
    fake.fail({ status: 400, body: { error: `bad request with token ${token}`, echo: { authorization: `Bearer ${token}` } }, match: (q) => q.path.startsWith('/api/enterprise') })
    const err = await rejection(wk.poll!(c, ref(r.upstreamId)))
    expect(err.status).toBe(400)
    expect(err.message).toBe('upstream answered 400: bad request with token REDACTED')
    expect(JSON.stringify(err.body)).not.toContain(token)
    expect(err.body).toEqual({ error: 'bad request with token REDACTED', echo: { authorization: 'Bearer REDACTED' } })

    // A status answer echoing it: the connector keeps what came; the watcher's one boundary removes it.
    fake.advance(r.upstreamId, 'FAILED', { error: `failed; Authorization: ${token}` })
    const obs = await wk.poll!(c, ref(r.upstreamId))
    expect(obs.error?.message).toBe(`failed; Authorization: ${token}`)
    const shown = shownObservation(obs, formsOf({ connector: wk, ctx: c, policy: DEFAULT_POLL_POLICY }))
    expect(JSON.stringify(shown)).not.toContain(token)
    expect(shown.error?.message).toBe('failed; Authorization: REDACTED')
    expect(shown.raw).toMatchObject({ status: 'FAILED', error: 'failed; Authorization: REDACTED' })
  })

  it('on 401 re-authenticates once and retries', async () => {
    const cache = new Map<string, unknown>()
    const r = await wk.trigger(withPassword({ cache }), trig({ industry_research_topic: 'EV' }))
    const before = fake.state.tokenExchanges
    fake.expireTokens()
    const o = await wk.poll!(withPassword({ cache }), ref(r.upstreamId))
    expect(o.status).toBe('queued')
    expect(fake.state.tokenExchanges).toBe(before + 1)
    // the new token is cached: no further exchange
    await wk.poll!(withPassword({ cache }), ref(r.upstreamId))
    expect(fake.state.tokenExchanges).toBe(before + 1)
  })

  it('a second 401 after re-authenticating is final (no loop)', async () => {
    const cache = new Map<string, unknown>()
    const r = await wk.trigger(withPassword({ cache }), trig({ industry_research_topic: 'EV' }))
    const before = fake.state.tokenExchanges
    const polls = fake.count('GET', '/api/enterprise/request/status/')
    fake.fail({ status: 401, body: { detail: 'nope' }, times: 2, match: (q) => q.path.startsWith('/api/enterprise') })
    const err = await rejection(wk.poll!(withPassword({ cache }), ref(r.upstreamId)))
    expect(err).toMatchObject({ code: 'upstream_unauthorized', transient: false, status: 401 })
    expect(fake.state.tokenExchanges).toBe(before + 1)
    expect(fake.count('GET', '/api/enterprise/request/status/')).toBe(polls + 2)
  })

  it('a refused static token is final without retry; a wrong password fails the exchange', async () => {
    const before = fake.count('POST', '/api/workflow_manager/start/')
    expect(await rejection(wk.trigger(withToken({ credentials: { token: 'bad' } }), trig({ industry_research_topic: 'EV' })))).toMatchObject({ code: 'upstream_unauthorized', transient: false })
    expect(fake.count('POST', '/api/workflow_manager/start/')).toBe(before + 1)
    const err = await rejection(wk.trigger(withPassword({ credentials: { username: 'analyst@example.com', password: 'wrong' } }), trig({ industry_research_topic: 'EV' })))
    expect(err).toMatchObject({ code: 'upstream_auth_failed', transient: false, status: 401 })
    expect(err.message).toContain('No active account')
  })

  it('renews an exchanged token past its exp before calling', async () => {
    const short = await startFakeWokelo({ tokenTtlSec: 10 })
    try {
      const cache = new Map<string, unknown>()
      const c = makeCtx({ provider: 'wokelo', baseUrl: short.url, credentials: { username: 'analyst@example.com', password: 'secret' }, upstreamWorkflowId: INDUSTRY, cache })
      await wk.trigger(c, trig({ industry_research_topic: 'EV' }))
      await wk.trigger(c, trig({ industry_research_topic: 'EV' }))
      // 10 s lifetime is inside the 30 s renewal margin: every call renews, none gets a 401
      expect(short.state.tokenExchanges).toBe(2)
      expect(short.state.unauthorized).toBe(0)
    } finally {
      await short.close()
    }
  })

  it('polls PENDING, PROCESSING, COMPLETED with a descriptive download result', async () => {
    const c = withToken({ workflowConfig: { fileType: 'docx' } })
    const r = await wk.trigger(c, trig({ industry_research_topic: 'EV' }))
    expect(await wk.poll!(c, ref(r.upstreamId))).toMatchObject({ status: 'queued', upstreamStatus: 'PENDING' })
    fake.advance(r.upstreamId, 'PROCESSING')
    expect(await wk.poll!(c, ref(r.upstreamId))).toMatchObject({ status: 'running', upstreamStatus: 'PROCESSING' })
    fake.advance(r.upstreamId, 'COMPLETED')
    const o = await wk.poll!(c, ref(r.upstreamId))
    expect(o.status).toBe('completed')
    const id = Number(r.upstreamId)
    expect(o.result).toEqual({
      report_id: id, file_type: 'docx',
      download: { method: 'POST', url: `${fake.url}/api/assets/download_report/`, body: { report_id: id, file_type: 'docx' } },
      status: { request_id: id, status: 'COMPLETED' },
    })
    expect(o.raw).toEqual({ request_id: id, status: 'COMPLETED' })
    // the descriptor is a working request for a holder of Wokelo credentials
    const d = (o.result as { download: { method: string; url: string; body: unknown } }).download
    const res = await fetch(d.url, { method: d.method, headers: { authorization: 'Bearer static-jwt', 'content-type': 'application/json' }, body: JSON.stringify(d.body) })
    expect(res.status).toBe(200)
    expect(await res.json()).toMatchObject({ report_id: id, file_type: 'docx' })
  })

  it('fetchResult adds the request/result JSON', async () => {
    const c = withToken({ connectionConfig: { fetchResult: true } })
    const r = await wk.trigger(c, trig({ industry_research_topic: 'EV' }))
    fake.advance(r.upstreamId, 'COMPLETED', { result: { summary: 'EV market' } })
    const o = await wk.poll!(c, ref(r.upstreamId))
    expect((o.result as Record<string, unknown>).data).toMatchObject({ status: 'COMPLETED', result: { summary: 'EV market' } })
  })

  it('FAILED carries the upstream message; unknown words keep upstreamStatus', async () => {
    const r = await wk.trigger(withToken(), trig({ industry_research_topic: 'EV' }))
    fake.advance(r.upstreamId, 'FAILED', { error: 'Not enough sources for topic' })
    const o = await wk.poll!(withToken(), ref(r.upstreamId))
    expect(o).toMatchObject({ status: 'failed', upstreamStatus: 'FAILED', error: { code: 'upstream_run_failed', message: 'Not enough sources for topic' } })
    fake.advance(r.upstreamId, 'ARCHIVED')
    const u = await wk.poll!(withToken(), ref(r.upstreamId))
    expect(u.status).toBeUndefined()
    expect(u.upstreamStatus).toBe('ARCHIVED')
    expect(u.raw).toBeDefined()
  })

  it('uses a configured status request (POST, path template, status path, status map, error path)', async () => {
    const r = await wk.trigger(withToken(), trig({ industry_research_topic: 'EV' }))
    const c = withToken({
      connectionConfig: { statusRequest: { method: 'POST', path: '/api/reports/{id}/state/', param: 'report_id', statusPath: 'data.state' } },
      workflowConfig: { statusRequest: { statusMap: { Done: 'completed', Broken: 'failed' }, errorPath: 'data.why', progressPath: 'data.pct' } },
    })
    const path = `/api/reports/${r.upstreamId}/state/`
    fake.fail({ status: 200, body: { data: { state: 'PROCESSING', pct: 40 } }, match: (q) => q.path === path })
    expect(await wk.poll!(c, ref(r.upstreamId))).toMatchObject({ status: 'running', progress: 0.4 })
    const sent = fake.requests.at(-1)!
    expect(sent.method).toBe('POST')
    expect(sent.body).toEqual({ report_id: Number(r.upstreamId) })
    fake.fail({ status: 200, body: { data: { state: 'Broken', why: 'quota exhausted' } }, match: (q) => q.path === path })
    expect(await wk.poll!(c, ref(r.upstreamId))).toMatchObject({ status: 'failed', error: { message: 'quota exhausted' } })
    fake.fail({ status: 200, body: { data: { state: 'done' } }, match: (q) => q.path === path })
    expect((await wk.poll!(c, ref(r.upstreamId))).status).toBe('completed')
  })

  it('400, 403, 404 are final', async () => {
    const r = await wk.trigger(withToken(), trig({ industry_research_topic: 'EV' }))
    for (const [status, code] of [[400, 'upstream_http_400'], [403, 'upstream_forbidden'], [404, 'upstream_not_found']] as const) {
      fake.fail({ status, body: { detail: `answer ${status}` } })
      const err = await rejection(wk.poll!(withToken(), ref(r.upstreamId)))
      expect(err).toMatchObject({ status, code, transient: false })
      expect(err.message).toContain(`answer ${status}`)
    }
    expect(await rejection(wk.poll!(withToken(), ref('99999999')))).toMatchObject({ status: 404, transient: false })
  })

  it('429: exponential backoff from 1 s when there is no Retry-After, Retry-After wins otherwise', async () => {
    const cache = new Map<string, unknown>()
    const c = withToken({ cache })
    const r = await wk.trigger(c, trig({ industry_research_topic: 'EV' }))
    const waits: number[] = []
    for (let i = 0; i < 8; i++) {
      fake.fail({ status: 429, body: { detail: 'Request was throttled.' } })
      const t0 = Date.now()
      const err = await rejection(wk.poll!(c, ref(r.upstreamId)))
      expect(err).toMatchObject({ transient: true, status: 429 })
      waits.push(Math.round((err.notBefore! - t0) / 1000))
    }
    expect(waits).toEqual([1, 2, 4, 8, 16, 32, 60, 60])
    await wk.poll!(c, ref(r.upstreamId)) // success resets the backoff
    fake.fail({ status: 429, headers: { 'retry-after': '20' } })
    const t0 = Date.now()
    const err = await rejection(wk.poll!(c, ref(r.upstreamId)))
    expect(Math.round((err.notBefore! - t0) / 1000)).toBe(20)
  })

  it('500 is retried 3 times, 502/503 5 times, then the error is final', async () => {
    const c = withToken()
    const r = await wk.trigger(c, trig({ industry_research_topic: 'EV' }))
    for (const [status, limit] of [[500, 3], [502, 5], [503, 5]] as const) {
      const seen: boolean[] = []
      for (let i = 0; i <= limit; i++) {
        fake.fail({ status, body: { detail: 'server error' } })
        seen.push((await rejection(wk.poll!(c, ref(r.upstreamId, {}, `run_${status}`)))).transient)
      }
      expect(seen).toEqual([...Array(limit).fill(true), false])
    }
    // a success in between resets the count
    fake.fail({ status: 500, times: 3 })
    for (let i = 0; i < 3; i++) await rejection(wk.poll!(c, ref(r.upstreamId, {}, 'run_reset')))
    await wk.poll!(c, ref(r.upstreamId, {}, 'run_reset'))
    fake.fail({ status: 500 })
    expect((await rejection(wk.poll!(c, ref(r.upstreamId, {}, 'run_reset')))).transient).toBe(true)
  })

  it('network failures and malformed answers are transient', async () => {
    const r = await wk.trigger(withToken(), trig({ industry_research_topic: 'EV' }))
    fake.fail({ drop: true })
    expect(await rejection(wk.poll!(withToken(), ref(r.upstreamId)))).toMatchObject({ transient: true, code: 'upstream_network_error' })
    fake.fail({ status: 200, raw: '<html>' })
    expect(await rejection(wk.poll!(withToken(), ref(r.upstreamId)))).toMatchObject({ transient: true, code: 'upstream_malformed' })
  })

  it('honours Idempotency-Key: a retried start makes one report', async () => {
    await expectOneJobPerRunId(wk, withToken, trig({ industry_research_topic: 'EV' }, { runId: 'run_wk_idem' }), () => fake.state.triggers)
  })

  it('tests the connection with either credential style', async () => {
    expect(await wk.testConnection!(withToken())).toMatchObject({ ok: true })
    expect(await wk.testConnection!(withPassword())).toMatchObject({ ok: true })
    expect((await wk.testConnection!(withToken({ credentials: { token: 'bad' } }))).ok).toBe(false)
    expect((await wk.testConnection!(withPassword({ credentials: { username: 'x', password: 'y' } }))).ok).toBe(false)
  })

  it('a script drives a report to completion', async () => {
    const f2 = await startFakeWokelo({ staticToken: 't', script: ['PENDING', 'PROCESSING', 'COMPLETED'] })
    try {
      const c = makeCtx({ provider: 'wokelo', baseUrl: f2.url, credentials: { token: 't' }, upstreamWorkflowId: INDUSTRY })
      const r = await wk.trigger(c, trig({ industry_research_topic: 'EV' }))
      expect((await wk.poll!(c, ref(r.upstreamId))).status).toBe('running')
      expect((await wk.poll!(c, ref(r.upstreamId))).status).toBe('completed')
    } finally {
      await f2.close()
    }
  })
})
