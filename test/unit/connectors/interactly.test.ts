import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { interactlyConnector as ix, observeRun } from '../../../src/connectors/interactly/index.ts'
import { startFakeInteractly, type FakeInteractly } from '../../fakes/interactly.ts'
import { expectOneJobPerRunId, makeCtx, ref, rejection, trig } from './context.ts'

const WF = '5eb7cf5a86d9755df3a6c593'

describe('interactly connector', () => {
  let fake: FakeInteractly
  beforeAll(async () => { fake = await startFakeInteractly({ workflows: [WF] }) })
  afterAll(async () => { await fake.close() })

  const ctx = (over: Partial<Parameters<typeof makeCtx>[0]> = {}) =>
    makeCtx({ provider: 'interactly', baseUrl: fake.url, credentials: { apiKey: 'ix-token' }, upstreamWorkflowId: WF, ...over })

  it('declares every command and a poll', () => {
    expect(Object.keys(ix.commands ?? {}).sort()).toEqual(['cancel', 'input', 'pause', 'resume'])
    expect(ix.poll).toBeTypeOf('function')
    expect(ix.connectionConfig.safeParse({ poll: { mode: 'data' } }).success).toBe(true)
    expect(ix.connectionConfig.safeParse({ poll: { mode: 'head' } }).success).toBe(false)
  })

  it('starts with Bearer auth, dynamic_variables and runtime_variables from the run', async () => {
    const c = ctx({ workflowConfig: { miscellaneous: { source: 'runrelay' } } })
    const r = await ix.trigger(c, trig({ thread_to_node_inputs: { t1: { text: 'hi' } }, dynamic_variables: { lang: 'en', name: 'template' } }, { variables: { name: 'Ada' }, runtimeVariables: { slot: '10:00' } }))
    expect(r.upstreamId).toMatch(/^[0-9a-f]{24}$/)
    expect(r).toMatchObject({ status: 'queued', upstreamStatus: 'not_started' })
    expect(r.outputs).toEqual([{ key: 'pair0.event0', data: { pair: 0, index: 0, command: 'start', event: { type: 'run_created' } } }])
    const sent = fake.requests.at(-1)!
    expect(sent.headers.authorization).toBe('Bearer ix-token')
    expect(sent.body).toEqual({
      command: 'start', workflow_id: WF,
      dynamic_variables: { lang: 'en', name: 'Ada' }, runtime_variables: { slot: '10:00' },
      miscellaneous: { source: 'runrelay' }, thread_to_node_inputs: { t1: { text: 'hi' } },
    })
  })

  it('rejects ids that are not 24 hex before calling (final)', async () => {
    const before = fake.requests.length
    expect(await rejection(ix.trigger(ctx({ upstreamWorkflowId: 'wf_123' }), trig()))).toMatchObject({ code: 'invalid_upstream_id', transient: false })
    expect(await rejection(ix.poll!(ctx(), ref('5eb7cf5a86d9755df3a6c59')))).toMatchObject({ code: 'invalid_upstream_id' })
    expect(await rejection(ix.commands!.pause!(ctx(), ref('zzb7cf5a86d9755df3a6c593'), undefined))).toMatchObject({ code: 'invalid_upstream_id' })
    expect(fake.requests.length).toBe(before)
  })

  it('polls the run (GET by default): statuses and outputs with stable keys', async () => {
    const r = await ix.trigger(ctx(), trig())
    let o = await ix.poll!(ctx(), ref(r.upstreamId))
    expect(o).toMatchObject({ status: 'queued', upstreamStatus: 'not_started' })
    expect(fake.requests.at(-1)).toMatchObject({ method: 'GET', path: `/workflows/v1/workflow-runs/${r.upstreamId}` })
    fake.advance(r.upstreamId, 'running', [{ type: 'node_output', text: 'Hello Ada' }])
    o = await ix.poll!(ctx(), ref(r.upstreamId))
    expect(o.status).toBe('running')
    expect(o.outputs!.map((x) => x.key)).toEqual(['pair0.event0', 'pair0.event1'])
    fake.advance(r.upstreamId, 'completed', [{ type: 'workflow_completed' }], { main: { summary: 'booked' } })
    o = await ix.poll!(ctx(), ref(r.upstreamId))
    expect(o.status).toBe('completed')
    expect(o.outputs!.map((x) => x.key)).toEqual(['pair0.event0', 'pair0.event1', 'pair0.event2', 'pair0.thread_outputs'])
    expect(o.outputs![1]).toEqual({ key: 'pair0.event1', data: { pair: 0, index: 1, command: 'start', event: { type: 'node_output', text: 'Hello Ada' } } })
    expect(o.result).toMatchObject({ workflow_run_id: r.upstreamId, output: { thread_to_node_outputs: { main: { summary: 'booked' } } } })
    expect(o.raw).toMatchObject({ workflow_run: { _id: r.upstreamId } })
  })

  it('failed runs carry the message of their error event; unknown words keep upstreamStatus', async () => {
    const r = await ix.trigger(ctx(), trig())
    fake.advance(r.upstreamId, 'failed', [{ type: 'error', error: 'LLM provider timeout' }])
    expect(await ix.poll!(ctx(), ref(r.upstreamId))).toMatchObject({ status: 'failed', error: { code: 'upstream_run_failed', message: 'LLM provider timeout' } })
    const r2 = await ix.trigger(ctx(), trig())
    fake.advance(r2.upstreamId, 'waiting_for_user')
    const o = await ix.poll!(ctx(), ref(r2.upstreamId))
    expect(o.status).toBeUndefined()
    expect(o.upstreamStatus).toBe('waiting_for_user')
    expect(observeRun({ workflow_run: { workflow_run: { status: 'failed' } } }).error?.message).toBe('Interactly workflow run failed')
  })

  it('commands: input → data, pause, resume, cancel → stop', async () => {
    const r = await ix.trigger(ctx(), trig())
    fake.advance(r.upstreamId, 'running')
    const d = (await ix.commands!.input!(ctx(), ref(r.upstreamId), { thread_to_node_inputs: { t1: { text: 'yes' } } }))!
    expect(fake.requests.at(-1)!.body).toEqual({ command: 'data', workflow_run_id: r.upstreamId, workflow_id: WF, thread_to_node_inputs: { t1: { text: 'yes' } } })
    expect(d.outputs!.at(-1)).toEqual({ key: 'pair1.event0', data: { pair: 1, index: 0, command: 'data', event: { type: 'data_received', thread_to_node_inputs: { t1: { text: 'yes' } } } } })
    const p = await ix.commands!.pause!(ctx(), ref(r.upstreamId), undefined)
    expect(p).toMatchObject({ status: 'paused', upstreamStatus: 'paused' })
    const rs = (await ix.commands!.resume!(ctx(), ref(r.upstreamId), { runtime_variables: { slot: '11:00' } }))!
    expect(rs.status).toBe('running')
    expect(fake.requests.at(-1)!.body).toMatchObject({ command: 'resume', workflow_run_id: r.upstreamId, runtime_variables: { slot: '11:00' } })
    const s = await ix.commands!.cancel!(ctx(), ref(r.upstreamId), undefined)
    expect(s).toMatchObject({ status: 'canceled', upstreamStatus: 'stopped' })
    expect(fake.state.commands.filter((c) => c.workflow_run_id === r.upstreamId).map((c) => c.command)).toEqual(['data', 'pause', 'resume', 'stop'])
    // on a finished run the upstream refuses: final
    expect(await rejection(ix.commands!.pause!(ctx(), ref(r.upstreamId), undefined))).toMatchObject({ status: 409, transient: false })
  })

  it('input needs a run-input object', async () => {
    const r = await ix.trigger(ctx(), trig())
    expect(await rejection(ix.commands!.input!(ctx(), ref(r.upstreamId), { text: 'hello' }))).toMatchObject({ code: 'invalid_input', transient: false })
    expect(await rejection(ix.commands!.input!(ctx(), ref(r.upstreamId), { thread_to_node_inputs: 'x' }))).toMatchObject({ code: 'invalid_input' })
  })

  it('poll mode "data" sends a data command with no data', async () => {
    const r = await ix.trigger(ctx(), trig())
    const c = ctx({ connectionConfig: { poll: { mode: 'data' } } })
    const o = await ix.poll!(c, ref(r.upstreamId))
    expect(o.status).toBe('queued')
    expect(fake.requests.at(-1)).toMatchObject({ method: 'POST', body: { command: 'data', workflow_run_id: r.upstreamId, workflow_id: WF } })
  })

  it('poll path is configurable', async () => {
    const r = await ix.trigger(ctx(), trig())
    fake.fail({ status: 200, body: { workflow_run: { _id: r.upstreamId, workflow_run: { status: 'running', input_output_pairs: [] } } }, match: (q) => q.path === `/v2/runs/${r.upstreamId}` })
    const o = await ix.poll!(ctx({ workflowConfig: { poll: { path: '/v2/runs/{id}' } } }), ref(r.upstreamId))
    expect(o.status).toBe('running')
  })

  it('errors: 401, 404, 422 final; 429 and 500 transient', async () => {
    expect(await rejection(ix.trigger(ctx({ credentials: { apiKey: 'bad' } }), trig()))).toMatchObject({ status: 401, transient: false, message: expect.stringContaining('Invalid API key') })
    expect(await rejection(ix.trigger(ctx({ upstreamWorkflowId: 'aaaaaaaaaaaaaaaaaaaaaaaa' }), trig()))).toMatchObject({ status: 404, transient: false })
    expect(await rejection(ix.poll!(ctx(), ref('bbbbbbbbbbbbbbbbbbbbbbbb')))).toMatchObject({ status: 404, transient: false })
    fake.fail({ status: 422, body: { detail: [{ loc: ['body', 'workflow_id'], msg: 'bad', type: 'value_error' }] } })
    expect(await rejection(ix.trigger(ctx(), trig()))).toMatchObject({ status: 422, transient: false })
    fake.fail({ status: 429, headers: { 'retry-after': '5' } })
    expect(await rejection(ix.trigger(ctx(), trig()))).toMatchObject({ status: 429, transient: true, notBefore: expect.any(Number) })
    fake.fail({ status: 500, body: { detail: 'Internal Server Error' } })
    expect(await rejection(ix.trigger(ctx(), trig()))).toMatchObject({ status: 500, transient: true })
  })

  it('honours Idempotency-Key on start', async () => {
    await expectOneJobPerRunId(ix, ctx, trig({}, { runId: 'run_ix_idem' }), () => fake.state.triggers)
  })

  it('a script drives the run to completion', async () => {
    const f2 = await startFakeInteractly({ script: ['not_started', 'running', 'completed'] })
    try {
      const c = makeCtx({ provider: 'interactly', baseUrl: f2.url, credentials: { apiKey: 'ix-token' }, upstreamWorkflowId: WF })
      const r = await ix.trigger(c, trig())
      expect((await ix.poll!(c, ref(r.upstreamId))).status).toBe('running')
      expect((await ix.poll!(c, ref(r.upstreamId))).status).toBe('completed')
    } finally {
      await f2.close()
    }
  })

  it('item 14: a flat input template is refused (it has no place in the start body); the body\'s own parts pass', async () => {
    const schema = ix.inputTemplate!
    expect(schema.safeParse({ greeting: 'Hello {{customer}}' }).success).toBe(false)
    expect(schema.safeParse({ dynamic_variables: { greeting: 'Hello {{customer}}' }, thread_to_node_inputs: '{{threads}}' }).success).toBe(true)
    expect(schema.safeParse({ dynamic_variables: ['x'] }).success).toBe(false)
    // A workflow stored before the check: the trigger refuses instead of dropping the input, before calling.
    const before = fake.requests.length
    const err = await rejection(ix.trigger(ctx(), trig({ greeting: 'Hello Ann' })))
    expect(err).toMatchObject({ code: 'invalid_input', transient: false })
    expect(err.message).toContain('greeting')
    expect(fake.requests.length).toBe(before)
  })

  it('issue 23 item 8: without an input template the variables are the dynamic_variables (the input, their copy, is not read)', async () => {
    const c = ctx()
    c.workflow.hasInputTemplate = false
    const r = await ix.trigger(c, trig({ customer: 'Ada' }, { variables: { customer: 'Ada' }, runtimeVariables: { slot: 1 } }))
    expect(r.upstreamId).toMatch(/^[0-9a-f]{24}$/)
    expect(fake.requests.at(-1)!.body).toMatchObject({ command: 'start', dynamic_variables: { customer: 'Ada' }, runtime_variables: { slot: 1 } })
  })
})
