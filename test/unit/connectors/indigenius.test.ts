import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { indigeniusConnector as ind, observeJob } from '../../../src/connectors/indigenius/index.ts'
import { startFakeServer, type FakeServer } from '../../fakes/common.ts'
import { startFakeIndigenius, type FakeIndigenius } from '../../fakes/indigenius.ts'
import { expectOneJobPerRunId, makeCtx, ref, rejection, trig } from './context.ts'

const WF = '665e4a34c65bb95f2f2d72e1'

describe('indigenius connector', () => {
  let fake: FakeIndigenius
  let receiver: FakeServer
  beforeAll(async () => {
    fake = await startFakeIndigenius({ workflows: [{ _id: WF, title: 'Lead follow-up' }, { _id: '665e4a34c65bb95f2f2d72e2', title: 'Reminder calls', description: 'd' }] })
    receiver = await startFakeServer(() => ({ status: 200, body: { ok: true } }))
  })
  afterAll(async () => { await fake.close(); await receiver.close() })

  const ctx = (over: Partial<Parameters<typeof makeCtx>[0]> = {}) =>
    makeCtx({ provider: 'indigenius', baseUrl: fake.url, credentials: { apiKey: 'ind-key' }, upstreamWorkflowId: WF, callbackUrl: `${receiver.url}/cb/run_x?sig=1`, ...over })

  it('declares cancel only, list, test, callback and schemas', () => {
    expect(Object.keys(ind.commands ?? {})).toEqual(['cancel'])
    expect(ind.poll).toBeTypeOf('function')
    expect(ind.parseCallback).toBeTypeOf('function')
    expect(ind.credentials.safeParse({ apiKey: 'k' }).success).toBe(true)
    expect(ind.credentials.safeParse({ apiKey: '' }).success).toBe(false)
  })

  it('lists workflows and tests the connection', async () => {
    const list = await ind.listWorkflows!(ctx())
    expect(list.map((w) => [w.id, w.name])).toEqual([[WF, 'Lead follow-up'], ['665e4a34c65bb95f2f2d72e2', 'Reminder calls']])
    expect(await ind.testConnection!(ctx())).toMatchObject({ ok: true })
    expect(await ind.testConnection!(ctx({ credentials: { apiKey: 'bad' } }))).toMatchObject({ ok: false })
  })

  it('points the workflow callback at the run, then runs it (201 → jobId)', async () => {
    const r = await ind.trigger(ctx(), trig({ ignored: true }))
    expect(r.upstreamId).toMatch(/^job_/)
    expect(r).toMatchObject({ status: 'running', message: 'Workflow execution started', raw: { status: true, jobId: r.upstreamId }, state: { push: true } })
    const wf = fake.state.workflows.get(WF)!
    expect(wf.callbackUrl).toBe(`${receiver.url}/cb/run_x?sig=1`)
    expect(wf.webhook).toEqual({ url: `${receiver.url}/cb/run_x?sig=1` })
    const run = fake.requests.filter((q) => q.path === `/v1/workflows/${WF}/run`).at(-1)!
    expect(run.headers['x-api-key']).toBe('ind-key')
    expect(run.rawBody).toBe('') // the page sends no body
  })

  it('sends the input as body with sendInput; skips the PATCH with pushCallback false', async () => {
    const patches = fake.count('PATCH', `/v1/workflows/${WF}`)
    await ind.trigger(ctx({ workflowConfig: { sendInput: true, pushCallback: false } }), trig({ phone: '+15550100' }))
    expect(fake.requests.at(-1)!.body).toEqual({ phone: '+15550100' })
    expect(fake.count('PATCH', `/v1/workflows/${WF}`)).toBe(patches)
  })

  it('polls the job: every state, progress, result and failure message', async () => {
    const r = await ind.trigger(ctx(), trig())
    expect(await ind.poll!(ctx(), ref(r.upstreamId))).toMatchObject({ status: 'queued', upstreamStatus: 'queued', progress: 0 })
    await fake.advance(r.upstreamId, 'running', { progress: 45 })
    expect(await ind.poll!(ctx(), ref(r.upstreamId))).toMatchObject({ status: 'running', progress: 0.45 })
    await fake.advance(r.upstreamId, 'completed', { result: { calls: 3, answered: 2 } })
    const done = await ind.poll!(ctx(), ref(r.upstreamId))
    expect(done).toMatchObject({ status: 'completed', upstreamStatus: 'completed', progress: 1, result: { calls: 3, answered: 2 } })
    expect(done.raw).toMatchObject({ status: true, data: { jobId: r.upstreamId } })

    const f = await ind.trigger(ctx(), trig())
    await fake.advance(f.upstreamId, 'failed', { failReason: 'Twilio number unreachable' })
    expect(await ind.poll!(ctx(), ref(f.upstreamId))).toMatchObject({ status: 'failed', error: { code: 'upstream_run_failed', message: 'Twilio number unreachable' } })

    await fake.advance(f.upstreamId, 'hibernating')
    const u = await ind.poll!(ctx(), ref(f.upstreamId))
    expect(u.status).toBeUndefined()
    expect(u.upstreamStatus).toBe('hibernating')
  })

  it('reads Agenda-style job documents without a status word', async () => {
    const ag = await startFakeIndigenius({ jobShape: 'agenda' })
    try {
      const c = ctx({ baseUrl: ag.url, callbackUrl: '' })
      const r = await ind.trigger(c, trig())
      expect((await ind.poll!(c, ref(r.upstreamId))).status).toBeUndefined()
      await ag.advance(r.upstreamId, 'running')
      expect((await ind.poll!(c, ref(r.upstreamId))).status).toBe('running')
      await ag.advance(r.upstreamId, 'completed', { result: { ok: 1 } })
      expect(await ind.poll!(c, ref(r.upstreamId))).toMatchObject({ status: 'completed', result: { ok: 1 } })
      const f = await ind.trigger(c, trig())
      await ag.advance(f.upstreamId, 'failed', { failReason: 'boom' })
      expect(await ind.poll!(c, ref(f.upstreamId))).toMatchObject({ status: 'failed', error: { message: 'boom' } })
    } finally {
      await ag.close()
    }
    const future = new Date(Date.now() + 60_000).toISOString()
    expect(observeJob({ nextRunAt: future, lastRunAt: null }, Date.now()).status).toBe('scheduled')
    expect(observeJob({ job: { state: 'active', percent: 20 } }, Date.now())).toMatchObject({ status: 'running', progress: 0.2 })
    expect(observeJob({ data: { jobStatus: 'cancelled' } }, Date.now()).status).toBe('canceled')
  })

  it('cancel calls /v1/workflows/{id}/cancel and the run is canceled', async () => {
    const r = await ind.trigger(ctx(), trig())
    const o = await ind.commands!.cancel!(ctx(), ref(r.upstreamId, r.state!), undefined)
    expect(o).toMatchObject({ status: 'canceled', message: 'Workflow cancelled', state: { cancelRequested: true, push: true } })
    expect(fake.count('POST', `/v1/workflows/${WF}/cancel`)).toBeGreaterThan(0)
    expect(await ind.poll!(ctx(), ref(r.upstreamId))).toMatchObject({ status: 'canceled', upstreamStatus: 'cancelled' })
    // a job gone after the cancel reads as canceled, not as an error
    fake.state.jobs.delete(r.upstreamId)
    expect(await ind.poll!(ctx(), ref(r.upstreamId, { cancelRequested: true }))).toMatchObject({ status: 'canceled' })
    expect(await rejection(ind.poll!(ctx(), ref(r.upstreamId)))).toMatchObject({ code: 'upstream_not_found', transient: false })
  })

  it('reads a field of the stored run state that has another shape as absent: no restore, and no parse error', async () => {
    const r = await ind.trigger(ctx(), trig())
    const patches = fake.count('PATCH', `/v1/workflows/${WF}`)
    await ind.finished!(ctx(), ref(r.upstreamId, { push: 'yes', priorCallback: 'x' }))
    expect(fake.count('PATCH', `/v1/workflows/${WF}`)).toBe(patches)
    fake.state.jobs.delete(r.upstreamId)
    // A field of another shape does not hide the others (nor throw).
    expect(await ind.poll!(ctx(), ref(r.upstreamId, { cancelRequested: true, push: 7, priorCallback: [] }))).toMatchObject({ status: 'canceled' })
  })

  it('missing scope → upstream_forbidden_scope naming the scope', async () => {
    const ro = ctx({ credentials: { apiKey: 'ind-read' } })
    const err = await rejection(ind.trigger(ro, trig()))
    expect(err).toMatchObject({ code: 'upstream_forbidden_scope', status: 403, transient: false })
    expect(err.message).toContain('workflows:write')
    expect(ro.callbackUrl).toBeTruthy()
    // the best-effort PATCH failed too, without stopping the attempt
    const r = await ind.trigger(ctx(), trig())
    const c = await rejection(ind.commands!.cancel!(ro, ref(r.upstreamId), undefined))
    expect(c).toMatchObject({ code: 'upstream_forbidden_scope' })
    expect(c.message).toContain('workflows:write')
    // a 403 whose body names no scope: the scope the endpoint needs
    fake.fail({ status: 403, body: { message: 'Forbidden' } })
    const p = await rejection(ind.poll!(ctx(), ref(r.upstreamId)))
    expect(p).toMatchObject({ code: 'upstream_forbidden_scope' })
    expect(p.message).toContain('workflows:read')
  })

  it('maps 400, 401, 404 and 500', async () => {
    fake.fail({ status: 400, body: { statusCode: 400, message: ['workflow is inactive'], error: 'Bad Request' } })
    const v = await rejection(ind.trigger(ctx({ callbackUrl: '' }), trig()))
    expect(v).toMatchObject({ code: 'upstream_validation', transient: false })
    expect(v.message).toContain('workflow is inactive')
    expect(await rejection(ind.trigger(ctx({ credentials: { apiKey: 'nope' }, callbackUrl: '' }), trig()))).toMatchObject({ code: 'upstream_unauthorized', transient: false })
    const nf = await rejection(ind.trigger(ctx({ upstreamWorkflowId: '000000000000000000000000', callbackUrl: '' }), trig()))
    expect(nf).toMatchObject({ code: 'upstream_not_found', status: 404 })
    expect(nf.message).toContain('Workflow not found')
    fake.fail({ status: 500, body: { message: 'Internal server error' } })
    expect(await rejection(ind.poll!(ctx(), ref('job_00000001')))).toMatchObject({ transient: true, status: 500 })
    fake.fail({ status: 201, body: { status: false, message: 'Workflow has no steps' }, match: (q) => q.path.endsWith('/run') })
    expect(await rejection(ind.trigger(ctx({ callbackUrl: '' }), trig()))).toMatchObject({ code: 'upstream_rejected', message: expect.stringContaining('Workflow has no steps') })
  })

  it('pushes to the run callback URL; parseCallback maps it and ignores other jobs', async () => {
    const c = ctx({ callbackUrl: `${receiver.url}/cb/push?sig=2` })
    const r = await ind.trigger(c, trig())
    await fake.advance(r.upstreamId, 'completed', { result: { minutes: 4 } })
    const got = receiver.requests.filter((q) => q.path === '/cb/push')
    expect(got).toHaveLength(1) // callbackUrl and webhook.url are the same URL: one push
    expect(ind.parseCallback!(c, ref(r.upstreamId), got[0].body)).toMatchObject({ status: 'completed', result: { minutes: 4 } })
    const other = ind.parseCallback!(c, ref(r.upstreamId), { jobId: 'job_other', state: 'failed' })
    expect(other.status).toBeUndefined()
    expect(other.raw).toEqual({ jobId: 'job_other', state: 'failed' })
    expect(ind.parseCallback!(c, ref(r.upstreamId), { jobId: r.upstreamId, state: 'failed', error: 'hung up' })).toMatchObject({ status: 'failed', error: { message: 'hung up' } })
  })

  it('honours Idempotency-Key on run', async () => {
    await expectOneJobPerRunId(ind, ctx, trig({}, { runId: 'run_ind_idem' }), () => fake.state.triggers)
  })

  describe('the vendor side (issue 12 items 11-13)', () => {
    const CUSTOMER = 'https://client.example.com/hooks/workflow'
    const WF2 = '665e4a34c65bb95f2f2d72f9'
    const withOthers = (others: string[], over: Partial<Parameters<typeof makeCtx>[0]> = {}) => ({ ...ctx(over), otherActiveRuns: async () => others })
    const jobState = (jobId: string) => fake.state.jobs.get(jobId)!.state

    it('item 11: cancel is not sent upstream while other runs of the workflow are active (it would stop them too)', async () => {
      const c = ctx({ workflowConfig: { pushCallback: false } })
      const a = await ind.trigger(c, trig())
      const b = await ind.trigger(c, trig())
      const cancels = fake.count('POST', `/v1/workflows/${WF}/cancel`)
      const refused = await rejection(ind.commands!.cancel!(withOthers(['run_b'], { workflowConfig: { pushCallback: false } }), ref(a.upstreamId), undefined))
      expect(refused).toMatchObject({ code: 'cancel_not_forwarded', transient: false })
      expect(refused.message).toContain('run_b')
      expect(fake.count('POST', `/v1/workflows/${WF}/cancel`)).toBe(cancels)
      expect([jobState(a.upstreamId), jobState(b.upstreamId)]).toEqual(['queued', 'queued'])
      // Alone, the run is canceled upstream.
      await ind.commands!.cancel!(withOthers([], { workflowConfig: { pushCallback: false } }), ref(b.upstreamId), undefined)
      expect(fake.count('POST', `/v1/workflows/${WF}/cancel`)).toBe(cancels + 1)
      expect(jobState(b.upstreamId)).toBe('cancelled')
    })

    it('item 12: the callback PATCH keeps webhook fields runrelay did not set, and the last run to end restores the customer\'s targets', async () => {
      fake.state.workflows.set(WF2, { _id: WF2, title: 'Own hooks', callbackUrl: CUSTOMER, webhook: { url: CUSTOMER, secret: 'whsec_keep', events: ['completed'] } })
      const cache = new Map<string, unknown>()
      const urlA = `${receiver.url}/v1/callbacks/run_a?exp=1&sig=a`
      const urlB = `${receiver.url}/v1/callbacks/run_b?exp=1&sig=b`
      const a = await ind.trigger(ctx({ upstreamWorkflowId: WF2, callbackUrl: urlA, cache }), trig())
      expect(fake.state.workflows.get(WF2)).toMatchObject({ callbackUrl: urlA, webhook: { url: urlA, secret: 'whsec_keep', events: ['completed'] } })
      expect(a.state).toMatchObject({ push: true, priorCallback: { callbackUrl: CUSTOMER, webhookUrl: CUSTOMER } })
      // A concurrent run takes the push over; it still knows the customer's targets.
      const b = await ind.trigger(ctx({ upstreamWorkflowId: WF2, callbackUrl: urlB, cache }), trig())
      expect(fake.state.workflows.get(WF2)).toMatchObject({ callbackUrl: urlB, webhook: { url: urlB, secret: 'whsec_keep' } })
      expect(b.state).toMatchObject({ priorCallback: { callbackUrl: CUSTOMER, webhookUrl: CUSTOMER } })
      // A ends while B is active: nothing changes. B ends last: the customer's targets come back, secret intact.
      await ind.finished!(withOthers(['run_b'], { upstreamWorkflowId: WF2, callbackUrl: urlA, cache }), ref(a.upstreamId, a.state!))
      expect(fake.state.workflows.get(WF2)!.callbackUrl).toBe(urlB)
      await ind.finished!(withOthers([], { upstreamWorkflowId: WF2, callbackUrl: urlB, cache }), ref(b.upstreamId, b.state!))
      expect(fake.state.workflows.get(WF2)).toEqual({ _id: WF2, title: 'Own hooks', callbackUrl: CUSTOMER, webhook: { url: CUSTOMER, secret: 'whsec_keep', events: ['completed'] } })
      // A target changed by hand in the meantime is left alone.
      const c = await ind.trigger(ctx({ upstreamWorkflowId: WF2, callbackUrl: urlA, cache }), trig())
      fake.state.workflows.get(WF2)!.callbackUrl = 'https://client.example.com/new-hook'
      fake.state.workflows.get(WF2)!.webhook = { url: 'https://client.example.com/new-hook' }
      await ind.finished!(withOthers([], { upstreamWorkflowId: WF2, callbackUrl: urlA, cache }), ref(c.upstreamId, c.state!))
      expect(fake.state.workflows.get(WF2)).toMatchObject({ callbackUrl: 'https://client.example.com/new-hook', webhook: { url: 'https://client.example.com/new-hook' } })
    })

    it('item 13: a 429 on the callback PATCH is retried after its Retry-After before /run; a wait beyond the bound turns push off', async () => {
      const patches = fake.count('PATCH', `/v1/workflows/${WF}`)
      fake.fail({ status: 429, headers: { 'retry-after': '1' }, body: { statusCode: 429, message: 'Too Many Requests' }, match: (q) => q.method === 'PATCH' })
      const started = Date.now()
      const r = await ind.trigger(ctx(), trig())
      expect(Date.now() - started).toBeGreaterThanOrEqual(950)
      expect(r.state).toMatchObject({ push: true })
      expect(fake.count('PATCH', `/v1/workflows/${WF}`)).toBe(patches + 2)
      const order = fake.requests.slice(-3).map((q) => q.method)
      expect(order).toEqual(['PATCH', 'PATCH', 'POST'])
      // Retry-After far beyond the bound: /run goes out at once, push is off and says why.
      fake.fail({ status: 429, headers: { 'retry-after': '600' }, match: (q) => q.method === 'PATCH' })
      const t0 = Date.now()
      const slow = await ind.trigger(ctx(), trig())
      expect(Date.now() - t0).toBeLessThan(2_000)
      expect(slow.state).toMatchObject({ push: false })
      expect(String(slow.state!.pushError)).toContain('429')
    })
  })
})
