import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { triggerRun, waitForCompletion, watchRun } from '../../packages/client/src/index.ts'
import { demoTenant } from '../helpers/live.ts'
import { api, startTestServer, until, type TestServer } from '../helpers/server.ts'

// Trigger tokens: a browser starts runs of one workflow without an API key, within a budget
// the database enforces, and reads exactly the runs it started.
let server: TestServer
let second: TestServer
let t: Awaited<ReturnType<typeof demoTenant>>
let wf: string, otherWf: string

beforeAll(async () => {
  server = await startTestServer()
  // A second process on the same database (and encryption key): the budget must hold across both.
  second = await startTestServer({ RUNRELAY_DATA_DIR: server.dataDir })
  t = await demoTenant(server)
  wf = await t.workflow('signup', { durationMs: 400, steps: 2 })
  otherWf = await t.workflow('admin-only', { durationMs: 400, steps: 2 })
})
afterAll(async () => { await second?.stop(); await server?.stop() })

const mintTrigger = async (body: Record<string, unknown>, headers: Record<string, string> = {}) =>
  t.client.post('/v1/tokens', { scope: 'trigger', workflow_id: wf, ...body }, headers)

describe('trigger tokens', () => {
  it('start runs of their one workflow and read exactly those runs, live', async () => {
    const minted = await mintTrigger({ max_runs: 2, ttl_seconds: 300 })
    expect(minted.status).toBe(201)
    expect(minted.body.trigger).toEqual({ workflow_id: wf, max_runs: 2, run_tags: [], variables: {}, allowed_variables: null })
    expect(minted.body.expires_in).toBeLessThanOrEqual(300)
    const token = minted.body.token as string
    const run = await triggerRun({ url: server.url, token, workflowId: wf, variables: { who: 'ada' } })
    expect(run.status).toBe('queued')
    expect(run.tags).toContain(minted.body.scope.tags[0])
    const browser = api(server.url, token)
    expect((await browser.get(`/v1/runs/${run.id}`)).status).toBe(200)
    // The same token follows the run to its end over WebSocket, folded into a snapshot.
    const live = watchRun({ url: server.url, token, runId: run.id })
    const done = await waitForCompletion({ url: server.url, token, runId: run.id }, { timeoutMs: 15_000 })
    expect(done.status).toBe('completed')
    await until(() => live.get().run.finished, 5_000, 'snapshot finished')
    expect(live.get().run.status).toBe('completed')
    expect(live.get().run.events.map((e) => e.seq)).toEqual(live.get().run.events.map((_, i) => i + 1))
    live.close()
    // A run someone else started is not its business.
    const other = await t.trigger(wf)
    expect((await browser.get(`/v1/runs/${other}`)).status).toBe(404)
  })

  it('can only trigger: other workflows 404, commands and lists 403, the budget ends with 403', async () => {
    const token = (await mintTrigger({ max_runs: 1 })).body.token as string
    const browser = api(server.url, token)
    expect((await browser.post(`/v1/workflows/${otherWf}/runs`, {})).status).toBe(404)
    expect((await browser.post('/v1/runs', { workflow_id: otherWf })).status).toBe(404)
    const first = await browser.post('/v1/runs', { workflow_id: wf })
    expect(first.status).toBe(202)
    // Anything but a trigger or a read of its runs is refused (401: the route takes no tokens).
    for (const path of [`/v1/runs/${first.body.id}/cancel`, '/v1/workflows', '/v1/tokens', '/v1/keys']) {
      expect([401, 403], path).toContain((await browser.post(path, { name: 'x' })).status)
    }
    expect((await t.client.get(`/v1/runs/${first.body.id}`)).body.status).not.toBe('canceled')
    expect((await browser.get('/v1/runs')).status).toBe(401)
    expect((await browser.get('/v1/workflows')).status).toBe(401)
    // A trigger token cannot tag its run for another token to read.
    expect((await browser.post(`/v1/workflows/${wf}/runs`, { tags: ['rr-token:tok_someone_else'] })).status).toBe(403)
    const over = await browser.post(`/v1/workflows/${wf}/runs`, {})
    expect(over.status).toBe(403)
    expect(over.body.error.code).toBe('trigger_limit_reached')
    // A read-only subscriber token cannot trigger at all.
    const reader = await t.mint({ workflow_ids: [wf] })
    expect((await api(server.url, reader).post(`/v1/workflows/${wf}/runs`, {})).status).toBe(403)
  })

  it('a refused trigger does not spend the budget', async () => {
    const strict = await t.workflow('strict', { durationMs: 300 })
    await t.client.patch(`/v1/workflows/${strict}`, { input_template: { name: '{{name}}' } })
    const token = (await t.client.post('/v1/tokens', { scope: 'trigger', workflow_id: strict, max_runs: 1 })).body.token as string
    const browser = api(server.url, token)
    const refused = await browser.post(`/v1/workflows/${strict}/runs`, {})
    expect(refused.status).toBe(400)
    expect((await browser.post(`/v1/workflows/${strict}/runs`, { variables: { name: 'x' } })).status).toBe(202)
  })

  it('the budget holds under concurrent triggers from two processes sharing the database', async () => {
    const token = (await mintTrigger({ max_runs: 3 })).body.token as string
    const results = await Promise.all(Array.from({ length: 16 }, (_, i) =>
      api(i % 2 ? second.url : server.url, token).post(`/v1/workflows/${wf}/runs`, {})))
    const statuses = results.map((r) => r.status)
    expect(statuses.filter((s) => s === 202)).toHaveLength(3)
    expect(statuses.filter((s) => s === 403)).toHaveLength(13)
    // Both processes took part in the race.
    expect(new Set(results.filter((r) => r.status === 202).map((r) => r.body.id)).size).toBe(3)
  })

  it('minting is idempotent with Idempotency-Key and validated', async () => {
    const a = await mintTrigger({ max_runs: 1 }, { 'idempotency-key': 'mint-1' })
    const b = await mintTrigger({ max_runs: 1 }, { 'idempotency-key': 'mint-1' })
    expect(a.status).toBe(201)
    expect(b.status).toBe(201)
    expect(b.headers.get('idempotent-replayed')).toBe('true')
    expect(b.body.token).toBe(a.body.token)
    const c = await mintTrigger({ max_runs: 1 }, { 'idempotency-key': 'mint-2' })
    expect(c.body.token).not.toBe(a.body.token)
    expect((await mintTrigger({ max_runs: 2 }, { 'idempotency-key': 'mint-1' })).status).toBe(422)
    // The replayed token is the same token with the same single run.
    expect((await api(server.url, a.body.token).post(`/v1/workflows/${wf}/runs`, {})).status).toBe(202)
    expect((await api(server.url, b.body.token).post(`/v1/workflows/${wf}/runs`, {})).status).toBe(403)

    const bad = async (body: Record<string, unknown>, field: string) => {
      const res = await t.client.post('/v1/tokens', body)
      expect(res.status, JSON.stringify(res.body)).toBe(400)
      expect(res.body.error.details.map((d: { path: string }) => d.path)).toContain(`body.${field}`)
    }
    await bad({ scope: 'trigger' }, 'workflow_id')
    await bad({ scope: 'trigger', workflow_id: wf, ttl_seconds: 7200 }, 'ttl_seconds')
    await bad({ scope: 'trigger', workflow_id: wf, run_ids: ['run_x'] }, 'run_ids')
    await bad({ workflow_ids: [wf], max_runs: 3 }, 'max_runs')
    await bad({ scope: 'trigger', workflow_id: wf, max_runs: 0 }, 'max_runs')
    expect((await mintTrigger({ workflow_id: 'wf_nope' })).status).toBe(404)
    const readOnly = (await t.client.post('/v1/keys', { name: 'ro', scopes: ['runs:read'] })).body.key as string
    expect((await api(server.url, readOnly).post('/v1/tokens', { scope: 'trigger', workflow_id: wf })).status).toBe(403)
  })

  it('an expired trigger token is refused', async () => {
    const token = (await mintTrigger({ ttl_seconds: 1 })).body.token as string
    await new Promise((r) => setTimeout(r, 2_100))
    expect((await api(server.url, token).post(`/v1/workflows/${wf}/runs`, {})).status).toBe(401)
  })
})
