import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { wivConnector as wiv, wivTimestamp } from '../../../src/connectors/wiv/index.ts'
import { startFakeServer, type FakeServer } from '../../fakes/common.ts'
import { startFakeWiv, type FakeWiv } from '../../fakes/wiv.ts'
import { expectOneJobPerRunId, makeCtx, ref, rejection, trig } from './context.ts'

describe('wiv connector', () => {
  let fake: FakeWiv
  let receiver: FakeServer
  beforeAll(async () => {
    fake = await startFakeWiv({ workflows: ['workflow_def456ghi789', 'wf_other'] })
    receiver = await startFakeServer(() => ({ status: 202, body: { accepted: true } }))
  })
  afterAll(async () => { await fake.close(); await receiver.close() })

  const ctx = (over: Partial<Parameters<typeof makeCtx>[0]> = {}) =>
    makeCtx({ provider: 'wiv', baseUrl: fake.url, credentials: { apiKey: 'wiv-key' }, upstreamWorkflowId: 'workflow_def456ghi789', callbackUrl: `${receiver.url}/cb/run_1?sig=s`, ...over })

  it('has no poll, no commands, no list: completion comes from the callback', () => {
    expect(wiv.poll).toBeUndefined()
    expect(wiv.commands).toBeUndefined()
    expect(wiv.listWorkflows).toBeUndefined()
    expect(wiv.parseCallback).toBeTypeOf('function')
    expect(wiv.credentials.safeParse({ apiKey: 'k' }).success).toBe(true)
    expect(wiv.workflowConfig.safeParse({ completeOnAccept: true, callbackKey: 'cb' }).success).toBe(true)
  })

  it('runs with {payload} and X-API-KEY, passing the callback URL under runrelay_callback_url', async () => {
    const r = await wiv.trigger(ctx(), trig({ user_id: '12345', action: 'process_order', data: { order_id: 'ORD-2024-001' } }))
    expect(r.upstreamId).toMatch(/^exec_/)
    expect(r.status).toBe('running')
    expect(r.upstreamStatus).toBe('WORKFLOW_TRIGGER')
    const sent = fake.requests.at(-1)!
    expect(sent.headers['x-api-key']).toBe('wiv-key')
    expect(sent.body).toEqual({ payload: { user_id: '12345', action: 'process_order', data: { order_id: 'ORD-2024-001' }, runrelay_callback_url: `${receiver.url}/cb/run_1?sig=s` } })
    expect(r.state).toEqual({ trigger: {
      execution_id: r.upstreamId, run_by: 'api_user_name', tenant_id: 'tenant_xyz789', trigger_type: 'MANUAL', trigger_id: '-',
      event_type: 'WORKFLOW_TRIGGER', workflow_id: 'workflow_def456ghi789', timestamp: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
    } })
    expect((r.raw as { data: { payload: unknown } }).data.payload).toMatchObject({ user_id: '12345' })
  })

  it('sends an empty payload for workflows with no input; a custom or disabled callback key', async () => {
    await wiv.trigger(ctx({ callbackUrl: '' }), trig(undefined))
    expect(fake.requests.at(-1)!.body).toEqual({ payload: {} })
    await wiv.trigger(ctx({ connectionConfig: { callbackKey: 'notify_url' } }), trig({ a: 1 }))
    expect(fake.requests.at(-1)!.body).toEqual({ payload: { a: 1, notify_url: `${receiver.url}/cb/run_1?sig=s` } })
    await wiv.trigger(ctx({ workflowConfig: { callbackKey: false } }), trig({ a: 1 }))
    expect(fake.requests.at(-1)!.body).toEqual({ payload: { a: 1 } })
    await wiv.trigger(ctx({ callbackUrl: '' }), trig('plain text'))
    expect(fake.requests.at(-1)!.body).toEqual({ payload: { input: 'plain text' } })
  })

  it('completeOnAccept: the accepted trigger is the completion, run_by / tenant_id / trigger_type in the result', async () => {
    const r = await wiv.trigger(ctx({ workflowConfig: { completeOnAccept: true } }), trig({ x: 1 }))
    expect(r.status).toBe('completed')
    expect(r.result).toMatchObject({ execution_id: r.upstreamId, run_by: 'api_user_name', tenant_id: 'tenant_xyz789', trigger_type: 'MANUAL', payload: { x: 1 } })
  })

  it('the workflow calls back: parseCallback completes the run with the result and the trigger facts', async () => {
    const r = await wiv.trigger(ctx(), trig({ x: 1 }))
    const cb = await fake.callBack(r.upstreamId, { status: 'success', result: { rows: 3 } })
    expect(cb.status).toBe(202)
    const got = receiver.requests.at(-1)!
    expect(got.path).toBe('/cb/run_1')
    const o = wiv.parseCallback!(ctx(), ref(r.upstreamId, r.state), got.body)
    expect(o).toMatchObject({ status: 'completed', upstreamStatus: 'success', raw: { status: 'success', result: { rows: 3 } } })
    expect(o.result).toMatchObject({ run_by: 'api_user_name', tenant_id: 'tenant_xyz789', trigger_type: 'MANUAL', result: { rows: 3 } })
  })

  it('maps callback bodies defensively', () => {
    const run = ref('exec_1', { trigger: { run_by: 'u' } })
    expect(wiv.parseCallback!(ctx(), run, { anything: 1 })).toMatchObject({ status: 'completed', upstreamStatus: 'callback', result: { run_by: 'u', result: { anything: 1 } } })
    expect(wiv.parseCallback!(ctx(), run, { error: 'step 3 failed: timeout' })).toMatchObject({ status: 'failed', error: { code: 'upstream_run_failed', message: 'step 3 failed: timeout' } })
    expect(wiv.parseCallback!(ctx(), run, { status: 'FAILED', error: { message: 'bad input' } })).toMatchObject({ status: 'failed', upstreamStatus: 'FAILED', error: { message: 'bad input' } })
    expect(wiv.parseCallback!(ctx(), run, { status: 'running', progress: 50, message: 'step 2' })).toMatchObject({ status: 'running', progress: 0.5, message: 'step 2' })
    const odd = wiv.parseCallback!(ctx(), run, { status: 'weird' })
    expect(odd.status).toBeUndefined()
    expect(odd.upstreamStatus).toBe('weird')
    expect(odd.raw).toEqual({ status: 'weird' })
    expect(wiv.parseCallback!(ctx(), run, 'text')).toMatchObject({ status: 'completed', raw: 'text' })
    for (const [w, s] of [['completed', 'completed'], ['cancelled', 'canceled'], ['timeout', 'timed_out'], ['paused', 'paused']] as const) {
      expect(wiv.parseCallback!(ctx(), run, { status: w }).status).toBe(s)
    }
  })

  it('reads a stored run state of another shape as none (the state schema is lenient, never a thrown parse error)', () => {
    for (const trigger of ['text', [1, 2], null, 3]) {
      expect(wiv.parseCallback!(ctx(), ref('exec_1', { trigger }), { result: 'ok' })).toMatchObject({ status: 'completed', result: { result: 'ok' } })
    }
    expect(wiv.parseCallback!(ctx(), ref('exec_1', {}), { result: 'ok' }).result).toEqual({ result: 'ok' })
  })

  it('an automatic callback reaches the receiver', async () => {
    const auto = await startFakeWiv({ autoCallback: { afterMs: 10, body: { status: 'completed', output: 'ok' } } })
    try {
      const r = await wiv.trigger(ctx({ baseUrl: auto.url, callbackUrl: `${receiver.url}/cb/auto` }), trig({}))
      for (let i = 0; i < 100 && auto.state.executions.get(r.upstreamId)!.callbacks.length === 0; i++) await new Promise((res) => setTimeout(res, 10))
      const got = receiver.requests.filter((q) => q.path === '/cb/auto')
      expect(got).toHaveLength(1)
      expect(wiv.parseCallback!(ctx(), ref(r.upstreamId, r.state), got[0].body)).toMatchObject({ status: 'completed', result: { result: 'ok' } })
    } finally {
      await auto.close()
    }
  })

  it('errors: 401 and 404 final, 429 and 5xx transient', async () => {
    expect(await rejection(wiv.trigger(ctx({ credentials: { apiKey: 'nope' } }), trig()))).toMatchObject({ status: 401, transient: false, message: expect.stringContaining('Unauthorized') })
    expect(await rejection(wiv.trigger(ctx({ upstreamWorkflowId: 'wf_missing' }), trig()))).toMatchObject({ status: 404, transient: false })
    fake.fail({ status: 429, headers: { 'retry-after': '2' } })
    expect(await rejection(wiv.trigger(ctx(), trig()))).toMatchObject({ status: 429, transient: true, notBefore: expect.any(Number) })
    fake.fail({ status: 500, body: { message: 'internal' } })
    expect(await rejection(wiv.trigger(ctx(), trig()))).toMatchObject({ status: 500, transient: true })
    fake.fail({ status: 200, body: { data: {} } })
    expect(await rejection(wiv.trigger(ctx(), trig()))).toMatchObject({ code: 'upstream_bad_answer', transient: false })
    expect(await rejection(wiv.trigger(ctx({ upstreamWorkflowId: '' }), trig()))).toMatchObject({ code: 'invalid_input' })
  })

  it('honours Idempotency-Key: one execution per run', async () => {
    await expectOneJobPerRunId(wiv, ctx, trig({ k: 1 }, { runId: 'run_wiv_idem' }), () => fake.state.triggers)
  })

  it('normalises the zone-less UTC timestamp', () => {
    expect(wivTimestamp('2025-05-22 20:59:07.014093')).toBe('2025-05-22T20:59:07.014Z')
    expect(wivTimestamp('2025-05-22 20:59:07')).toBe('2025-05-22T20:59:07Z')
    expect(wivTimestamp('yesterday')).toBe('yesterday')
  })
})
