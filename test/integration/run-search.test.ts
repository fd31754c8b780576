import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { events } from '../../src/db/schema.ts'
import { demoTenant, sleep } from '../helpers/live.ts'
import { startTestServer, until, type TestServer } from '../helpers/server.ts'
import { rawDb } from '../helpers/store.ts'

// What the dashboard finds runs with, and its replay, through the API (real server, real libSQL).
describe('finding runs and replaying them', () => {
  let server: TestServer
  let t: Awaited<ReturnType<typeof demoTenant>>
  let other: Awaited<ReturnType<typeof demoTenant>>
  let wfA: string, wfB: string, wfC: string
  const ids = (body: { items: Array<{ id: string }> }) => body.items.map((r) => r.id)

  beforeAll(async () => {
    server = await startTestServer()
    t = await demoTenant(server)
    other = await demoTenant(server, 'other')
    wfA = await t.workflow('a', { durationMs: 300, steps: 1 })
    wfB = await t.workflow('b', { durationMs: 300, steps: 1, outcome: 'failed' })
    wfC = await t.workflow('c', { durationMs: 300, steps: 1 })
  })
  afterAll(async () => { await server?.stop() })

  it('filters by several workflows, a search (run id, upstream id or tag, exact) and a time range', async () => {
    const a = await t.trigger(wfA, { tags: ['alpha'] })
    const b = await t.trigger(wfB)
    await sleep(30)
    const cutoff = new Date().toISOString()
    await sleep(30)
    const c = await t.trigger(wfC, { tags: ['gamma'] })
    const up = await until(async () => (await t.client.get(`/v1/runs/${b}`)).body.upstream_id as string | null, 10_000, 'upstream id')

    expect(new Set(ids((await t.client.get(`/v1/runs?workflow_id=${wfA},${wfB}`)).body))).toEqual(new Set([a, b]))
    expect(ids((await t.client.get(`/v1/runs?q=${a}`)).body)).toEqual([a])
    expect(ids((await t.client.get(`/v1/runs?q=${encodeURIComponent(up)}`)).body)).toEqual([b])
    expect(ids((await t.client.get('/v1/runs?q=gamma')).body)).toEqual([c])
    expect(ids((await t.client.get(`/v1/runs?q=${a.slice(0, -2)}`)).body)).toEqual([]) // exact, not a prefix
    expect(ids((await t.client.get(`/v1/runs?created_after=${encodeURIComponent(cutoff)}`)).body)).toEqual([c])
    expect(new Set(ids((await t.client.get(`/v1/runs?created_before=${encodeURIComponent(cutoff)}`)).body))).toEqual(new Set([a, b]))
    // Another tenant finds nothing of these, whatever it searches.
    expect(ids((await other.client.get(`/v1/runs?q=${a}`)).body)).toEqual([])
    const bad = await t.client.get('/v1/runs?created_after=yesterday')
    expect(bad.status).toBe(400)
    expect(bad.body.error.code).toBe('validation_failed')
  })

  it('replays a run as a new run of the same workflow with its variables and tags, linked by replay_of', async () => {
    const first = await t.trigger(wfA, { variables: { who: 'x' }, tags: ['again'] })
    const res = await t.client.post(`/v1/runs/${first}/replay`, undefined, { 'idempotency-key': 'replay-1' })
    expect(res.status).toBe(202)
    expect(res.body).toMatchObject({ workflow_id: wfA, replay_of: first, variables: { who: 'x' } })
    expect(res.body.tags).toEqual(['again'])
    expect(res.body.id).not.toBe(first)
    const again = await t.client.post(`/v1/runs/${first}/replay`, undefined, { 'idempotency-key': 'replay-1' })
    expect(again.body.id).toBe(res.body.id) // the same key: the same replay, no third run
    const created = (await t.history(res.body.id))[0]!
    expect(created.type).toBe('run.created')
    expect((await t.client.get(`/v1/runs/${res.body.id}/events`)).body.events[0].data.replay_of).toBe(first)
    // Another tenant's run is a 404 and makes nothing.
    const before = (await other.client.get('/v1/runs')).body.items.length
    expect((await other.client.post(`/v1/runs/${first}/replay`)).status).toBe(404)
    expect((await other.client.get('/v1/runs')).body.items.length).toBe(before)
  })

  it('counts upstream errors (run.error events) in the workflow summary, per bucket', async () => {
    const s0 = (await t.client.get(`/v1/workflows/${wfA}/summary`)).body
    expect(s0.upstream_errors).toBe(0)
    // Two transient upstream errors recorded for a run of A (as the watcher records them), one for C.
    const runId = await t.trigger(wfA)
    const now = Date.now()
    const row = (wf: string, seq: number) => ({ tenantId: t.tenantId, runId, workflowId: wf, seq, type: 'run.error' as const, status: 'running' as const, data: { transient: true }, createdAt: now })
    await rawDb(server.runtime.store).insert(events).values([row(wfA, 1001), row(wfA, 1002), row(wfC, 1003)])
    const s = (await t.client.get(`/v1/workflows/${wfA}/summary`)).body
    expect(s.upstream_errors).toBe(2)
    const bucket = s.timeline.find((b: { start: string }) => Date.parse(b.start) === Math.floor(now / 3_600_000) * 3_600_000)
    expect(bucket.upstream_errors).toBe(2)
  })
})
