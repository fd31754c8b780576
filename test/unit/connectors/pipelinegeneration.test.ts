import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { pipelinegenerationConnector as pg } from '../../../src/connectors/pipelinegeneration/index.ts'
import { UpstreamError } from '../../../src/connectors/types.ts'
import { startFakePipelineGeneration, type FakePipelineGeneration } from '../../fakes/pipelinegeneration.ts'
import { expectOneJobPerRunId, makeCtx, ref, rejection, trig } from './context.ts'

const COMPANY = 'a1b2c3d4-e5f6-7890-abcd-ef1234567890'
const CONTACT = '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0'

describe('pipelinegeneration connector', () => {
  let fake: FakePipelineGeneration
  beforeAll(async () => { fake = await startFakePipelineGeneration() })
  afterAll(async () => { await fake.close() })
  beforeEach(() => { fake.setDelay(0); fake.setRateLimit(undefined) })

  const ctx = (over: Partial<Parameters<typeof makeCtx>[0]> = {}) =>
    makeCtx({ provider: 'pipelinegeneration', baseUrl: fake.url, credentials: { apiKey: 'pg-key' }, upstreamWorkflowId: 'wf_abc123', ...over })

  it('validates its schemas', () => {
    expect(pg.credentials.safeParse({ apiKey: 'k' }).success).toBe(true)
    expect(pg.credentials.safeParse({}).success).toBe(false)
    expect(pg.workflowConfig.safeParse({ company_id: COMPANY }).success).toBe(true)
    expect(pg.workflowConfig.safeParse({ company_id: 'nope' }).success).toBe(false)
  })

  it('lists workflows and tests the connection', async () => {
    const list = await pg.listWorkflows!(ctx())
    expect(list.map((w) => w.id)).toEqual(['wf_abc123', 'wf_def456'])
    expect(list[0]).toMatchObject({ name: 'Account Research', description: 'Deep-dive research on a target account' })
    expect(await pg.testConnection!(ctx())).toMatchObject({ ok: true })
    const bad = await pg.testConnection!(ctx({ credentials: { apiKey: 'wrong' } }))
    expect(bad.ok).toBe(false)
    expect(bad.message).toContain('401')
  })

  it('triggers with company_id, contact_id and parameters (202, queued) and sends x-api-key', async () => {
    const r = await pg.trigger(ctx(), trig({ company_id: COMPANY, contact_id: CONTACT, parameters: { depth: 'comprehensive' }, include_competitors: true }))
    expect(r.status).toBe('queued')
    expect(r.upstreamStatus).toBe('queued')
    expect(r.upstreamId).toMatch(/^exec_/)
    expect(r.raw).toMatchObject({ execution_id: r.upstreamId, workflow_id: 'wf_abc123', status: 'queued' })
    const e = fake.state.executions.get(r.upstreamId)!
    expect(e.request).toEqual({
      workflow_id: 'wf_abc123', company_id: COMPANY, contact_id: CONTACT,
      parameters: { depth: 'comprehensive', include_competitors: true },
    })
  })

  it('merges workflow config defaults under the input', async () => {
    const c = ctx({ workflowConfig: { company_id: COMPANY, parameters: { depth: 'light', lang: 'en' } } })
    const r = await pg.trigger(c, trig({ parameters: { depth: 'deep' } }))
    expect(fake.state.executions.get(r.upstreamId)!.request).toEqual({ workflow_id: 'wf_abc123', company_id: COMPANY, parameters: { depth: 'deep', lang: 'en' } })
  })

  it('rejects non-UUID company_id / contact_id before calling upstream (final)', async () => {
    const before = fake.count('POST', '/v1/workflows/trigger')
    for (const input of [{ company_id: 'acme' }, { contact_id: 42 }]) {
      const err = await rejection(pg.trigger(ctx(), trig(input)))
      expect(err).toBeInstanceOf(UpstreamError)
      expect(err).toMatchObject({ code: 'invalid_input', transient: false })
    }
    expect(fake.count('POST', '/v1/workflows/trigger')).toBe(before)
  })

  it('maps the 400 {"error": ...} shape to a final error carrying the message', async () => {
    fake.fail({ status: 400, body: { error: 'workflow_id is required' }, match: (r) => r.path === '/v1/workflows/trigger' })
    const err = await rejection(pg.trigger(ctx(), trig({})))
    expect(err).toMatchObject({ transient: false, status: 400, code: 'upstream_http_400', body: { error: 'workflow_id is required' } })
    expect(err.message).toContain('workflow_id is required')
  })

  it('unknown workflow → final 404; bad key → final 401', async () => {
    expect(await rejection(pg.trigger(ctx({ upstreamWorkflowId: 'wf_nope' }), trig()))).toMatchObject({ transient: false, status: 404 })
    expect(await rejection(pg.trigger(ctx({ credentials: { apiKey: 'x' } }), trig()))).toMatchObject({ transient: false, status: 401 })
  })

  it('polls every documented status with started_at, completed_at and result', async () => {
    const r = await pg.trigger(ctx(), trig({ company_id: COMPANY }))
    let o = await pg.poll!(ctx(), ref(r.upstreamId))
    expect(o).toMatchObject({ status: 'queued', upstreamStatus: 'queued' })
    fake.advance(r.upstreamId, 'running')
    o = await pg.poll!(ctx(), ref(r.upstreamId))
    expect(o.status).toBe('running')
    expect((o.raw as Record<string, unknown>).started_at).toEqual(expect.any(String))
    fake.advance(r.upstreamId, 'completed', { result: { summary: 'Research completed successfully', outputs: { report_id: 'rpt_001', insights_count: 12 } } })
    o = await pg.poll!(ctx(), ref(r.upstreamId))
    expect(o.status).toBe('completed')
    expect(o.result).toEqual({ summary: 'Research completed successfully', outputs: { report_id: 'rpt_001', insights_count: 12 } })
    expect(o.message).toBe('Research completed successfully')
    expect((o.raw as Record<string, unknown>).completed_at).toEqual(expect.any(String))
    expect(o.error).toBeUndefined()
  })

  it('failed executions carry the upstream message', async () => {
    const r = await pg.trigger(ctx(), trig())
    fake.advance(r.upstreamId, 'failed', { error: 'company not found in CRM' })
    const o = await pg.poll!(ctx(), ref(r.upstreamId))
    expect(o.status).toBe('failed')
    expect(o.error).toMatchObject({ code: 'upstream_run_failed', message: 'company not found in CRM' })
  })

  it('unknown status words keep upstreamStatus with no status', async () => {
    const r = await pg.trigger(ctx(), trig())
    fake.advance(r.upstreamId, 'throttled')
    const o = await pg.poll!(ctx(), ref(r.upstreamId))
    expect(o.status).toBeUndefined()
    expect(o.upstreamStatus).toBe('throttled')
    expect(o.raw).toBeDefined()
  })

  it('5xx, 429 with Retry-After and malformed answers are transient', async () => {
    const r = await pg.trigger(ctx(), trig())
    fake.fail({ status: 500, body: { error: 'boom' } })
    expect(await rejection(pg.poll!(ctx(), ref(r.upstreamId)))).toMatchObject({ transient: true, status: 500 })
    fake.fail({ status: 429, body: { error: 'slow down' }, headers: { 'retry-after': '7' } })
    const t0 = Date.now()
    const err = await rejection(pg.poll!(ctx(), ref(r.upstreamId)))
    expect(err).toMatchObject({ transient: true, code: 'upstream_rate_limited' })
    expect(err.notBefore).toBeGreaterThanOrEqual(t0 + 7_000)
    fake.fail({ status: 200, raw: '{"execution_id": ' })
    expect(await rejection(pg.poll!(ctx(), ref(r.upstreamId)))).toMatchObject({ transient: true, code: 'upstream_malformed' })
    expect(await rejection(pg.poll!(ctx(), ref('exec_missing')))).toMatchObject({ transient: false, status: 404 })
  })

  it('the fake rate limiter answers 429 with Retry-After', async () => {
    fake.setRateLimit({ limit: 1, windowMs: 60_000, retryAfterSec: 3 })
    await pg.listWorkflows!(ctx())
    const err = await rejection(pg.listWorkflows!(ctx()))
    expect(err).toMatchObject({ transient: true, status: 429 })
    expect(err.notBefore).toBeGreaterThan(Date.now() + 1_000)
  })

  it('slow answers time out as transient errors', async () => {
    fake.setDelay(300)
    const c = ctx({ fetch: (i, init) => fetch(i, { ...init, signal: AbortSignal.timeout(50) }) })
    expect(await rejection(pg.listWorkflows!(c))).toMatchObject({ transient: true, code: 'upstream_timeout' })
  })

  it('sends the run id as Idempotency-Key: a retried trigger makes one execution', async () => {
    await expectOneJobPerRunId(pg, ctx, trig({}, { runId: 'run_idem_1' }), () => fake.state.triggers)
  })

  it('a script drives the execution to completion poll by poll', async () => {
    const f2 = await startFakePipelineGeneration({ script: ['queued', 'running', 'completed'] })
    try {
      const c = makeCtx({ provider: 'pipelinegeneration', baseUrl: f2.url, credentials: { apiKey: 'pg-key' }, upstreamWorkflowId: 'wf_abc123' })
      const r = await pg.trigger(c, trig())
      const seen = [(await pg.poll!(c, ref(r.upstreamId))).status, (await pg.poll!(c, ref(r.upstreamId))).status]
      expect(seen).toEqual(['running', 'completed'])
    } finally {
      await f2.close()
    }
  })

  it('has no commands and a poll policy', () => {
    expect(pg.commands).toBeUndefined()
    expect(pg.defaultPollPolicy?.deadlineMs).toBeGreaterThanOrEqual(120_000)
  })
})
