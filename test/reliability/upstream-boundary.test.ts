/**
 * What goes to an upstream (issue 23 items 1, 7, 8), on the real server with fake upstreams on
 * loopback: a trigger token's variables cannot steer an authenticated request out of its path
 * (every value is encoded for its position, a URL that leaves the base URL is refused before
 * anything is sent), a request refused locally is a certain failure (never
 * trigger_outcome_unknown), and Interactly without an input template maps the variables.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startFakeServer, type FakeServer } from '../fakes/common.ts'
import { startFakeInteractly, type FakeInteractly } from '../fakes/interactly.ts'
import { createTenant, startTestServer, until, type TestServer } from '../helpers/server.ts'
import { recordFigures } from './figures.ts'

const TOKEN = 'vendor-token-3f2e1d0c9b8a'

describe('reliability: what goes to an upstream', () => {
  let server: TestServer
  let vendor: FakeServer
  let ix: FakeInteractly
  let A: Awaited<ReturnType<typeof createTenant>>
  const figures: Record<string, unknown> = {}

  beforeAll(async () => {
    vendor = await startFakeServer((req) => req.method === 'POST' ? { status: 201, body: { id: 'job_1', status: 'running' } } : { status: 200, body: { status: 'running' } })
    ix = await startFakeInteractly({ workflows: ['5eb7cf5a86d9755df3a6c593'] })
    server = await startTestServer({ RUNRELAY_RATE_LIMIT_PER_MINUTE: '0' })
    A = await createTenant(server, 'boundary')
  }, 30_000)
  afterAll(async () => {
    await server?.stop()
    await vendor?.close()
    await ix?.close()
    recordFigures('upstream_boundary', figures)
  })

  const connection = async (config: Record<string, unknown> = {}, credentials: Record<string, string> = { token: TOKEN }, baseUrl = `${vendor.url}/api`) => {
    const c = await A.client.post('/v1/connections', { name: 'v', provider: 'http', base_url: baseUrl, config: { auth: { type: 'header', header: 'Authorization', scheme: 'Bearer' }, ...config }, credentials })
    expect(c.status, JSON.stringify(c.body)).toBe(201)
    return c.body.id as string
  }
  const workflow = async (connectionId: string, trigger: Record<string, unknown>) => {
    const wf = await A.client.post('/v1/workflows', { name: 'w', connection_id: connectionId, upstream_workflow_id: 'r', config: { trigger, status: { path: '/jobs/{{upstream_id}}' } }, poll_policy: { first_interval_ms: 100, max_interval_ms: 200, max_transient_errors: 1 } })
    expect(wf.status, JSON.stringify(wf.body)).toBe(201)
    return wf.body.id as string
  }
  /** Trigger with a trigger token (what a public page holds) and wait for the run to start or end. */
  const triggerWithToken = async (workflowId: string, variables: Record<string, unknown>) => {
    const minted = await A.client.post('/v1/tokens', { scope: 'trigger', workflow_id: workflowId })
    expect(minted.status, JSON.stringify(minted.body)).toBe(201)
    const token = minted.body.token as string
    const res = await fetch(`${server.url}/v1/workflows/${workflowId}/runs`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ variables }) })
    expect(res.status).toBe(202)
    const id = ((await res.json()) as { id: string }).id
    return until(async () => { const r = (await A.client.get(`/v1/runs/${id}`)).body; return r.finished_at || r.upstream_id ? r : null }, 10_000, `run ${id} settled`)
  }
  const sentTo = (from: number) => vendor.requests.slice(from).map((r) => ({ method: r.method, path: r.path, query: Object.fromEntries(r.query), headers: r.headers, body: r.body }))

  it('item 1: arrays and objects cannot leave their path segment; nothing is sent and the run fails as certain', async () => {
    const wf = await workflow(await connection(), { method: 'POST', path: '/reports/{{company}}/start' })
    const before = vendor.requests.length
    const attacks = [['/../../../admin/delete-all?confirm=yes&x='], { '/../../admin': 1 }, '..', null]
    const errors: string[] = []
    for (const company of attacks) {
      const run = await triggerWithToken(wf, { company })
      expect(run.status, JSON.stringify(company)).toBe('failed')
      expect(run.error.code).toMatch(/^template_(value_not_scalar|dot_segment)$/)
      errors.push(run.error.code)
      const events = (await A.client.get(`/v1/runs/${run.id}/events`)).body.events as Array<{ type: string; data: any }>
      expect(events.some((e) => e.type === 'run.status_changed' && e.data.reason === 'upstream_error'), 'a final, certain failure').toBe(true)
      expect(JSON.stringify(events)).not.toContain('trigger_outcome_unknown')
    }
    expect(vendor.requests.length - before).toBe(0)
    // A string is one segment, whatever it holds.
    const ok = await triggerWithToken(wf, { company: '../../admin/delete-all?confirm=yes#x' })
    expect(ok.upstream_id).toBe('job_1')
    const [sent] = sentTo(before)
    expect(sent).toMatchObject({ method: 'POST', path: '/api/reports/..%2F..%2Fadmin%2Fdelete-all%3Fconfirm%3Dyes%23x/start', query: {} })
    expect(sent!.headers.authorization).toBe(`Bearer ${TOKEN}`)
    await A.client.post(`/v1/runs/${ok.id}/cancel`, {})
    figures.path = { refused: errors, sent_for_refused: 0, string_sent_as: sent!.path }
  })

  it('item 1: query values, header values and body positions are encoded; a template that leaves the base URL is refused', async () => {
    const wf = await workflow(await connection(), {
      method: 'POST', path: '/reports/{{company}}?lang={{lang}}&n={{n}}',
      headers: { 'X-Company': '{{company}}' },
      body: { name: '{{company}}', quoted: 'said "{{company}}"', n: '{{n}}' },
    })
    const before = vendor.requests.length
    const value = 'acme"}, "admin": true, "x": {"'
    const ok = await triggerWithToken(wf, { company: value, lang: 'en&admin=1#frag', n: 7 })
    expect(ok.upstream_id).toBe('job_1')
    const [sent] = sentTo(before)
    expect(sent!.query).toEqual({ lang: 'en&admin=1#frag', n: '7' })
    expect(decodeURIComponent(sent!.path)).toBe(`/api/reports/${value}`)
    expect(sent!.headers['x-company']).toBe(value)
    expect(sent!.body).toEqual({ name: value, quoted: `said "${value}"`, n: 7 })
    await A.client.post(`/v1/runs/${ok.id}/cancel`, {})

    // A line break in a header value: refused before sending.
    const crlf = await triggerWithToken(wf, { company: 'acme\r\nX-Admin: 1', lang: 'en', n: 1 })
    expect(crlf.status).toBe('failed')
    expect(crlf.error.code).toBe('invalid_header_value')

    // A template (or an upstream id) that walks out of the base path: refused, nothing sent.
    for (const path of ['/../admin', '/reports/%2e%2e/%2E%2E/admin', '/reports/./x']) {
      const out = await workflow(await connection(), { method: 'POST', path })
      const run = await triggerWithToken(out, {})
      expect(run.status, path).toBe('failed')
      expect(run.error.code, path).toBe('url_outside_base')
    }
    expect(vendor.requests.slice(before).filter((r) => r.method === 'POST')).toHaveLength(1)
    figures.positions = { query: sent!.query, header: 'as text', body: 'JSON', crlf_header: crlf.error.code, outside_base: 'url_outside_base' }
  })

  it('item 7: a request refused locally (a credential fetch would not send, a refused connection) is a certain failure, never trigger_outcome_unknown', async () => {
    const posts = () => vendor.requests.filter((r) => r.method === 'POST').length
    const before = posts()
    // A credential with a line break: fetch refuses the header value; 0 requests reach the upstream.
    const wf = await workflow(await connection({}, { token: 'abc\ndef-0123456789' }), { method: 'POST', path: '/jobs' })
    const run = await triggerWithToken(wf, {})
    expect(run.status).toBe('failed')
    expect(run.error.code).toBe('invalid_header_value')
    expect(posts() - before).toBe(0)
    // Nothing listening: retried, then failed with the reason; never "may have started a job".
    const closed = await startFakeServer(() => ({ status: 200 }))
    const deadUrl = closed.url
    await closed.close()
    const refused = await workflow(await connection({}, { token: TOKEN }, deadUrl), { method: 'POST', path: '/jobs' })
    const r2 = await triggerWithToken(refused, {})
    const final = await until(async () => { const r = (await A.client.get(`/v1/runs/${r2.id}`)).body; return r.finished_at ? r : null }, 10_000, 'refused run failed')
    expect(final.status).toBe('failed')
    expect(final.error.code).toBe('upstream_network_error')
    expect(final.error.message).toMatch(/gave up after 1 transient errors/)
    figures.certain = { invalid_header: run.error.code, econnrefused: final.error.code, sent: 0 }
  })

  it('item 8: an Interactly workflow without an input template sends the run variables as dynamic_variables', async () => {
    const conn = await A.client.post('/v1/connections', { name: 'ix', provider: 'interactly', base_url: ix.url, credentials: { apiKey: 'ix-token' } })
    const wf = await A.client.post('/v1/workflows', { name: 'ix', connection_id: conn.body.id, upstream_workflow_id: '5eb7cf5a86d9755df3a6c593', poll_policy: { first_interval_ms: 200 } })
    expect(wf.status).toBe(201)
    const before = ix.requests.length
    const res = await A.client.post(`/v1/workflows/${wf.body.id}/runs`, { variables: { customer: 'Ada', slots: 2 }, runtime_variables: { today: 'Monday' } })
    expect(res.status).toBe(202)
    const run = await until(async () => { const r = (await A.client.get(`/v1/runs/${res.body.id}`)).body; return r.upstream_id || r.finished_at ? r : null }, 10_000, 'interactly run started')
    expect(run.error).toBeNull()
    expect(run.upstream_id).toMatch(/^[0-9a-f]{24}$/)
    const start = ix.requests.slice(before).find((r) => r.method === 'POST')!
    expect(start.body).toMatchObject({ command: 'start', dynamic_variables: { customer: 'Ada', slots: 2 }, runtime_variables: { today: 'Monday' } })
    await A.client.post(`/v1/runs/${res.body.id}/cancel`, {})
  })
})
