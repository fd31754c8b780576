/**
 * The drop-in proxy: vendor-native calls through `/v1/connections/{id}/proxy/<path>` reach the
 * vendor with the connection's credentials and come back unchanged; a trigger call also answers
 * `RunRelay-Run-Id` and the run is watched to the end.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { upstreamUrl } from '../../src/http/routes/proxy.ts'
import { startFakeIndigenius, type FakeIndigenius } from '../fakes/indigenius.ts'
import { startFakeInteractly, type FakeInteractly } from '../fakes/interactly.ts'
import { startFakePipelineGeneration, type FakePipelineGeneration } from '../fakes/pipelinegeneration.ts'
import { startFakeWokelo, type FakeWokelo } from '../fakes/wokelo.ts'
import { FAST, providerTenant, WAIT } from '../helpers/providers.ts'
import { startTestServer, until, type TestServer } from '../helpers/server.ts'

let server: TestServer
let t: Awaited<ReturnType<typeof providerTenant>>
let other: Awaited<ReturnType<typeof providerTenant>>
let pg: FakePipelineGeneration
let wokelo: FakeWokelo
let ind: FakeIndigenius
let ix: FakeInteractly
let pgConn: string

/** A vendor-native call through the proxy, authenticated to runrelay with `key`. */
async function call(connectionId: string, method: string, path: string, body: unknown, headers: Record<string, string>) {
  const res = await fetch(`${server.url}/v1/connections/${connectionId}/proxy${path}`, {
    method, headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers }, body: body === undefined ? undefined : JSON.stringify(body),
  })
  const text = await res.text()
  let json: any = text
  try { json = JSON.parse(text) } catch { /* not JSON */ }
  return { status: res.status, headers: res.headers, body: json, text }
}

beforeAll(async () => {
  server = await startTestServer()
  t = await providerTenant(server, 'proxy')
  other = await providerTenant(server, 'intruder')
  pg = await startFakePipelineGeneration({ script: ['queued', 'completed'] })
  wokelo = await startFakeWokelo({ script: ['PENDING', 'PROCESSING', 'COMPLETED'] })
  ind = await startFakeIndigenius()
  ix = await startFakeInteractly({ script: ['not_started', 'running', 'completed'] })
  pgConn = await t.connection('pipelinegeneration', pg.url, { apiKey: 'pg-key' })
}, 60_000)
afterAll(async () => {
  await server?.stop()
  await Promise.all([pg?.close(), wokelo?.close(), ind?.close(), ix?.close()])
})

describe('drop-in proxy', () => {
  it('forwards a vendor trigger with the connection\'s key, answers it unchanged plus RunRelay-Run-Id, and watches the run to the end', async () => {
    // Vendor code sends its own x-api-key: the proxy replaces it with the connection's.
    const res = await call(pgConn, 'POST', '/v1/workflows/trigger', { workflow_id: 'wf_abc123' }, { authorization: `Bearer ${t.key}`, 'x-api-key': 'whatever-the-sdk-sends' })
    expect(res.status).toBe(202)
    const exec = [...pg.state.executions.values()].at(-1)!
    expect(res.body).toEqual({ execution_id: exec.execution_id, workflow_id: 'wf_abc123', status: 'queued', created_at: exec.created_at })
    expect(res.headers.get('content-type')).toContain('application/json')
    const runId = res.headers.get('runrelay-run-id')!
    expect(runId).toMatch(/^run_/)
    const sent = pg.requests.at(-1)!
    expect(sent.headers['x-api-key']).toBe('pg-key')
    expect(sent.headers.authorization).toBeUndefined()
    expect(JSON.stringify(sent.headers)).not.toContain(t.key)

    const sub = t.subscribe(runId)
    const events = await sub.finished('completed')
    expect(events[0]!.data).toMatchObject({ via: 'proxy', upstream_id: exec.execution_id })
    const run = await t.run(runId)
    expect(run.upstream_id).toBe(exec.execution_id)
    expect(run.tags).toContain('proxy')
    expect(pg.state.triggers).toBe(1) // the watcher never triggers a run that has an upstream id
    const wf = (await t.client.get(`/v1/workflows/${run.workflow_id}`)).body
    expect(wf).toMatchObject({ name: 'proxy: wf_abc123', connection_id: pgConn, upstream_workflow_id: 'wf_abc123', tags: ['proxy'] })

    // The next proxied trigger of that upstream workflow uses the same workflow.
    const again = await call(pgConn, 'POST', '/v1/workflows/trigger', { workflow_id: 'wf_abc123' }, { 'x-api-key': t.key })
    expect(again.status).toBe(202)
    expect(again.headers.get('runrelay-workflow-id')).toBe(run.workflow_id)
    await t.client.post(`/v1/runs/${again.headers.get('runrelay-run-id')}/cancel`, {})
  }, 30_000)

  it('prefers a workflow configured by hand for that upstream workflow (its poll policy applies)', async () => {
    const wf = await t.workflow(pgConn, 'wf_def456', { poll_policy: FAST })
    const res = await call(pgConn, 'POST', '/v1/workflows/trigger', { workflow_id: 'wf_def456' }, { 'x-api-key': t.key })
    expect(res.status).toBe(202)
    expect(res.headers.get('runrelay-workflow-id')).toBe(wf)
    const started = Date.now()
    await t.waitStatus(res.headers.get('runrelay-run-id')!, ['completed'], 5_000)
    expect(Date.now() - started).toBeLessThan(2_500)
  })

  it('just forwards calls that are not a trigger (query kept, no run), and vendor errors unchanged', async () => {
    const before = (await t.client.get('/v1/runs')).body.items.length
    const list = await call(pgConn, 'GET', '/v1/workflows?status=active&x=1', undefined, { 'x-api-key': t.key })
    expect(list.status).toBe(200)
    expect(list.body.map((w: any) => w.id)).toEqual(['wf_abc123', 'wf_def456'])
    expect(list.headers.get('runrelay-run-id')).toBeNull()
    expect(pg.requests.at(-1)!.query.get('status')).toBe('active')
    const missing = await call(pgConn, 'POST', '/v1/workflows/trigger', {}, { 'x-api-key': t.key })
    expect(missing.status).toBe(400)
    expect(missing.body).toEqual({ error: 'workflow_id is required' })
    expect(missing.headers.get('runrelay-run-id')).toBeNull()
    const unknown = await call(pgConn, 'GET', '/v1/workflows/executions/exec_nope', undefined, { 'x-api-key': t.key })
    expect(unknown.status).toBe(404)
    expect(unknown.body).toEqual({ error: 'execution not found' })
    expect((await t.client.get('/v1/runs')).body.items.length).toBe(before)
  })

  it('answers 404 for another tenant\'s connection, 401 without a key, 403 without runs:write', async () => {
    const theirs = await other.connection('pipelinegeneration', pg.url, { apiKey: 'pg-key' })
    const n = pg.requests.length
    const res = await call(theirs, 'POST', '/v1/workflows/trigger', { workflow_id: 'wf_abc123' }, { 'x-api-key': t.key })
    expect(res.status).toBe(404)
    expect(res.body.error.code).toBe('not_found')
    expect((await call('con_nope', 'GET', '/v1/workflows', undefined, { 'x-api-key': t.key })).status).toBe(404)
    expect((await call(pgConn, 'GET', '/v1/workflows', undefined, {})).status).toBe(401)
    const reader = await t.client.post('/v1/keys', { name: 'reader', scopes: ['runs:read', 'workflows:read'] })
    expect((await call(pgConn, 'GET', '/v1/workflows', undefined, { 'x-api-key': reader.body.key })).status).toBe(403)
    expect(pg.requests.length).toBe(n)
  })

  it('applies the body limit (413) before anything reaches the vendor', async () => {
    const n = pg.requests.length
    const big = { workflow_id: 'wf_abc123', parameters: { blob: 'x'.repeat(3 * 1024 * 1024) } }
    const res = await call(pgConn, 'POST', '/v1/workflows/trigger', big, { 'x-api-key': t.key })
    expect(res.status).toBe(413)
    expect(pg.requests.length).toBe(n)
  })

  it('refuses paths that leave the base URL', () => {
    expect(upstreamUrl('http://h.test/api', '/v1/x', '?a=1')).toBe('http://h.test/api/v1/x?a=1')
    expect(() => upstreamUrl('http://h.test/api', '/%2e%2e/admin', '')).toThrow(/leaves/)
    expect(() => upstreamUrl('http://h.test/api', '/../admin', '')).toThrow(/leaves/)
    expect(upstreamUrl('http://h.test', '/a/b', '')).toBe('http://h.test/a/b')
  })

  it('wokelo: obtains the JWT from username/password for the caller and watches the report', async () => {
    const conn = await t.connection('wokelo', wokelo.url, { username: 'analyst@example.com', password: 'secret' })
    await t.workflow(conn, 'industry_custom_fc44748', { poll_policy: FAST })
    const res = await call(conn, 'POST', '/api/workflow_manager/start/', { workflow: 'industry_custom_fc44748', industry_research_topic: 'Electric vehicles' }, { authorization: `Bearer ${t.key}` })
    expect(res.status).toBe(200)
    expect(res.body).toEqual({ report_id: expect.any(Number) })
    expect(wokelo.requests.at(-1)!.headers.authorization).toMatch(/^[^ ]+\.[^ ]+\.[^ ]+$/) // bare, as Wokelo's reference sends it
    const run = await t.waitStatus(res.headers.get('runrelay-run-id')!, ['completed'])
    expect(run.upstream_id).toBe(String(res.body.report_id))
    expect(run.result.report_id).toBe(res.body.report_id)
  })

  it('indigenius: the run endpoint answered 201 is watched by polling', async () => {
    const conn = await t.connection('indigenius', ind.url, { apiKey: 'ind-key' })
    await t.workflow(conn, '665e4a34c65bb95f2f2d72e1', { poll_policy: FAST })
    const res = await call(conn, 'POST', '/v1/workflows/665e4a34c65bb95f2f2d72e1/run', undefined, { 'x-api-key': t.key })
    expect(res.status).toBe(201)
    expect(res.body).toEqual({ status: true, message: 'Workflow execution started', jobId: expect.stringMatching(/^job_/) })
    const runId = res.headers.get('runrelay-run-id')!
    await until(async () => ind.count('GET', `/v1/workflows/jobs/${res.body.jobId}`) > 0, WAIT, 'a poll')
    await ind.advance(res.body.jobId, 'completed')
    const run = await t.waitStatus(runId, ['completed'])
    expect(run.upstream_id).toBe(res.body.jobId)
    // The job read endpoint is not a trigger.
    const job = await call(conn, 'GET', `/v1/workflows/jobs/${res.body.jobId}`, undefined, { 'x-api-key': t.key })
    expect(job.status).toBe(200)
    expect(job.headers.get('runrelay-run-id')).toBeNull()
  })

  it('interactly: a start command becomes a run whose outputs stream; other commands are forwarded only', async () => {
    const conn = await t.connection('interactly', ix.url, { apiKey: 'ix-token' })
    await t.workflow(conn, '5eb7cf5a86d9755df3a6c593', { poll_policy: FAST })
    const res = await call(conn, 'POST', '/workflows/v1/workflow-runs', { command: 'start', workflow_id: '5eb7cf5a86d9755df3a6c593', dynamic_variables: { name: 'Ada' } }, { 'x-api-key': t.key, authorization: `Bearer ${t.key}` })
    expect(res.status).toBe(200)
    expect(res.body.workflow_run._id).toMatch(/^[0-9a-f]{24}$/)
    expect(ix.requests.at(-1)!.headers.authorization).toBe('Bearer ix-token')
    const runId = res.headers.get('runrelay-run-id')!
    const events = await t.subscribe(runId).finished('completed')
    expect(events.filter((e) => e.type === 'run.output').map((e) => e.data.key)).toContain('pair0.event0')
    const runs = (await t.client.get('/v1/runs?tag=proxy&limit=200')).body.items.length
    const data = await call(conn, 'POST', '/workflows/v1/workflow-runs', { command: 'data', workflow_run_id: res.body.workflow_run._id }, { 'x-api-key': t.key })
    expect(data.headers.get('runrelay-run-id')).toBeNull()
    expect((await t.client.get('/v1/runs?tag=proxy&limit=200')).body.items.length).toBe(runs)
  })
})
