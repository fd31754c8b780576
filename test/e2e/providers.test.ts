/**
 * Every vendor connector end to end through the public API: a real server, the vendor's fake,
 * a connection, a workflow, a run, and a WebSocket subscriber that watches it finish (seq 1..n
 * without gaps, a terminal event, close 1000). Callbacks (Wiv's last step, Indigenius's
 * workflow callback, a Wokelo webhook) go to the run's signed callback URL.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { callbackUrl } from '../../src/core/binding.ts'
import { SecretBox } from '../../src/core/crypto.ts'
import { startFakeIndigenius, type FakeIndigenius } from '../fakes/indigenius.ts'
import { startFakeInteractly, type FakeInteractly } from '../fakes/interactly.ts'
import { startFakePipelineGeneration, type FakePipelineGeneration } from '../fakes/pipelinegeneration.ts'
import { startFakeWiv, type FakeWiv } from '../fakes/wiv.ts'
import { startFakeWokelo, type FakeWokelo } from '../fakes/wokelo.ts'
import { providerTenant, startCallbackServer, WAIT } from '../helpers/providers.ts'
import { sleep } from '../helpers/live.ts'
import { until, type TestServer } from '../helpers/server.ts'

let server: TestServer
let t: Awaited<ReturnType<typeof providerTenant>>
let box: SecretBox

/** POST a body to a URL; status and parsed JSON. */
async function post(url: string, body: unknown) {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  const text = await res.text()
  return { status: res.status, body: text ? JSON.parse(text) : null }
}
const withSig = (url: string, sig: string | null) => {
  const u = new URL(url)
  if (sig === null) u.searchParams.delete('sig')
  else u.searchParams.set('sig', sig)
  return u.href
}
const upstreamIdOf = (runId: string) => until(async () => (await t.run(runId)).upstream_id as string | null, WAIT, `run ${runId} to be triggered`)
const statusChanges = (events: any[], to: string) => events.filter((e) => e.type === 'run.status_changed' && e.data.to === to).length

beforeAll(async () => {
  server = await startCallbackServer()
  t = await providerTenant(server, 'providers')
  box = await SecretBox.fromKey(readFileSync(join(server.dataDir, 'encryption.key'), 'utf8'))
}, 60_000)
afterAll(async () => { await server?.stop() })

describe('pipelinegeneration', () => {
  let fake: FakePipelineGeneration
  let conn: string
  beforeAll(async () => {
    fake = await startFakePipelineGeneration({ script: ['queued', 'running', 'completed'] })
    conn = await t.connection('pipelinegeneration', fake.url, { apiKey: 'pg-key' })
  })
  afterAll(async () => { await fake?.close() })

  it('tests the connection and discovers the upstream workflows', async () => {
    const test = await t.client.post(`/v1/connections/${conn}/test`)
    expect(test.status).toBe(200)
    expect(test.body.ok).toBe(true)
    const list = await t.client.get(`/v1/connections/${conn}/workflows`)
    expect(list.status).toBe(200)
    expect(list.body.items.map((w: any) => w.id)).toEqual(['wf_abc123', 'wf_def456'])
    expect(list.body.items[0].name).toBe('Account Research')
    const bad = await t.connection('pipelinegeneration', fake.url, { apiKey: 'wrong' })
    expect((await t.client.post(`/v1/connections/${bad}/test`)).body.ok).toBe(false)
    expect((await t.client.get(`/v1/connections/${bad}/workflows`)).status).toBe(502)
  })

  it('triggers, polls and streams a run to completed', async () => {
    const wf = await t.workflow(conn, 'wf_abc123', { input_template: { company_id: '{{company}}', depth: 'comprehensive' } })
    const runId = await t.trigger(wf, { variables: { company: 'a1b2c3d4-e5f6-7890-abcd-ef1234567890' } })
    const sub = t.subscribe(runId)
    const events = await sub.finished('completed')
    expect(events.map((e) => e.data.to).filter(Boolean)).toEqual(['running', 'completed'])
    const run = await t.run(runId)
    expect(run.upstream_id).toMatch(/^exec_/)
    expect(run.result.outputs.report_id).toBe('rpt_001')
    const sent = fake.state.executions.get(run.upstream_id)!.request
    expect(sent).toEqual({ workflow_id: 'wf_abc123', company_id: 'a1b2c3d4-e5f6-7890-abcd-ef1234567890', parameters: { depth: 'comprehensive' } })
  })
})

describe('wokelo (username/password)', () => {
  let fake: FakeWokelo
  let conn: string
  beforeAll(async () => {
    fake = await startFakeWokelo({ script: ['PENDING', 'PROCESSING', 'COMPLETED'] })
    conn = await t.connection('wokelo', fake.url, { username: 'analyst@example.com', password: 'secret' })
  })
  afterAll(async () => { await fake?.close() })

  it('tests the connection by exchanging the password for a token', async () => {
    const ok = await t.client.post(`/v1/connections/${conn}/test`)
    expect(ok.body).toMatchObject({ ok: true })
    expect(fake.state.tokenExchanges).toBeGreaterThanOrEqual(1)
    const bad = await t.connection('wokelo', fake.url, { username: 'analyst@example.com', password: 'nope' })
    const refused = await t.client.post(`/v1/connections/${bad}/test`)
    expect(refused.body.ok).toBe(false)
    expect(refused.body.message).toMatch(/username\/password|401/)
    expect((await t.client.get(`/v1/connections/${conn}/workflows`)).status).toBe(409)
  })

  it('triggers a report and follows it to completed', async () => {
    const wf = await t.workflow(conn, 'industry_custom_fc44748', { input_template: { industry_research_topic: '{{topic}}' } })
    const runId = await t.trigger(wf, { variables: { topic: 'Electric vehicles' } })
    const events = await t.subscribe(runId).finished('completed')
    expect(statusChanges(events, 'completed')).toBe(1)
    const run = await t.run(runId)
    expect(run.result.report_id).toBe(Number(run.upstream_id))
    expect(run.result.download.url).toBe(`${fake.url}/api/assets/download_report/`)
    expect(fake.state.reports.get(Number(run.upstream_id))!.request).toMatchObject({ workflow: 'industry_custom_fc44748', industry_research_topic: 'Electric vehicles' })
  })

  it('takes a webhook on the signed callback URL at once; bad, missing and other runs\' signatures are 401', async () => {
    // Polls far apart: only the webhook can finish the run within the test.
    const wf = await t.workflow(conn, 'industry_custom_slow', { poll_policy: { first_interval_ms: 60_000, max_interval_ms: 60_000 }, input_template: { industry_research_topic: 'Batteries' } })
    const runId = await t.trigger(wf)
    const other = await t.trigger(wf)
    const reportId = await upstreamIdOf(runId)
    const url = await callbackUrl(box, server.url, runId, Date.now() + 3_600_000)
    const otherSig = new URL(await callbackUrl(box, server.url, other, Date.now() + 3_600_000)).searchParams.get('sig')!
    expect((await post(withSig(url, null), { report_id: Number(reportId), status: 'COMPLETED' })).status).toBe(401)
    expect((await post(withSig(url, 'AAAA' + otherSig.slice(4)), { report_id: Number(reportId), status: 'COMPLETED' })).status).toBe(401)
    expect((await post(withSig(url, otherSig), { report_id: Number(reportId), status: 'COMPLETED' })).status).toBe(401)
    expect((await t.run(runId)).status).toBe('queued')
    // A webhook about another report leaves this run alone.
    expect((await post(url, { report_id: 1, status: 'COMPLETED' })).status).toBe(202)
    expect((await t.run(runId)).status).toBe('queued')
    const started = Date.now()
    expect((await post(url, { report_id: Number(reportId), status: 'COMPLETED' })).status).toBe(202)
    const run = await t.run(runId)
    expect(run.status).toBe('completed')
    expect(Date.now() - started).toBeLessThan(2_000)
    expect(run.result.report_id).toBe(Number(reportId))
    await t.client.post(`/v1/runs/${other}/cancel`)
  })

  it('routes the account-wide webhook (the connection\'s signed callback URL) to the run it names', async () => {
    const wf = await t.workflow(conn, 'industry_custom_account_hook', { poll_policy: { first_interval_ms: 60_000, max_interval_ms: 60_000 }, input_template: { industry_research_topic: 'Solar' } })
    const first = await t.trigger(wf)
    const second = await t.trigger(wf)
    const url = (await t.client.get(`/v1/connections/${conn}`)).body.callback_url as string
    expect(url).toContain(`/v1/connections/${conn}/callback?sig=`)
    expect((await post(withSig(url, null), { report_id: 1, status: 'COMPLETED' })).status).toBe(401)
    const reportId = Number(await upstreamIdOf(second))
    const res = await post(url, { report_id: reportId, status: 'COMPLETED' })
    expect(res.status).toBe(202)
    expect((await t.run(second)).status).toBe('completed')
    expect((await t.run(first)).status).toBe('queued')
    // A report runrelay does not watch is acknowledged and changes nothing.
    expect((await post(url, { report_id: 987654, status: 'FAILED' })).status).toBe(202)
    expect((await t.run(first)).status).toBe('queued')
    await t.client.post(`/v1/runs/${first}/cancel`)
  })
})

describe('wiv (completion by callback)', () => {
  let fake: FakeWiv
  let conn: string
  beforeAll(async () => {
    fake = await startFakeWiv({ autoCallback: { afterMs: 300, body: { status: 'completed', result: { tickets: 3 } } } })
    conn = await t.connection('wiv', fake.url, { apiKey: 'wiv-key' })
  })
  afterAll(async () => { await fake?.close() })

  it('has no connection test nor discovery (nothing documented): 409', async () => {
    expect((await t.client.post(`/v1/connections/${conn}/test`)).status).toBe(409)
    expect((await t.client.get(`/v1/connections/${conn}/workflows`)).status).toBe(409)
  })

  it('completes when the Wiv workflow\'s last step calls the run\'s callback URL', async () => {
    const wf = await t.workflow(conn, 'workflow_def456ghi789', { input_template: { user_id: '{{user}}' } })
    const runId = await t.trigger(wf, { variables: { user: '12345' } })
    const events = await t.subscribe(runId).finished('completed')
    expect(events.map((e) => e.data.to).filter(Boolean)).toEqual(['running', 'completed'])
    const run = await t.run(runId)
    expect(run.result).toMatchObject({ execution_id: run.upstream_id, run_by: 'api_user_name', result: { tickets: 3 } })
    const exec = fake.state.executions.get(run.upstream_id)!
    expect(exec.payload.user_id).toBe('12345')
    expect(exec.payload.runrelay_callback_url).toMatch(new RegExp(`^${server.url}/v1/callbacks/${runId}\\?exp=\\d+&sig=`))
    expect(exec.callbacks).toEqual([{ status: 202, body: { accepted: true } }])
  })

  it('refuses a missing, bad or another run\'s signature with 401', async () => {
    const slow = await startFakeWiv()
    try {
      const c2 = await t.connection('wiv', slow.url, { apiKey: 'wiv-key' })
      const wf = await t.workflow(c2, 'wf_manual')
      const a = await t.trigger(wf)
      const b = await t.trigger(wf)
      await upstreamIdOf(a)
      const urlA = [...slow.state.executions.values()].map((e) => String(e.payload.runrelay_callback_url)).find((u) => u.includes(a))!
      const urlB = [...slow.state.executions.values()].map((e) => String(e.payload.runrelay_callback_url)).find((u) => u.includes(b))
        ?? await callbackUrl(box, server.url, b, Date.now() + 3_600_000)
      const sigB = new URL(urlB).searchParams.get('sig')!
      expect((await post(withSig(urlA, null), { status: 'completed' })).status).toBe(401)
      expect((await post(withSig(urlA, 'x' + sigB.slice(1)), { status: 'completed' })).status).toBe(401)
      expect((await post(withSig(urlA, sigB), { status: 'completed' })).status).toBe(401)
      expect((await t.run(a)).status).toBe('running')
      expect((await post(urlA, { status: 'failed', error: 'disk full' })).status).toBe(202)
      const run = await t.run(a)
      expect(run.status).toBe('failed')
      expect(run.error.message).toBe('disk full')
      await t.client.post(`/v1/runs/${b}/cancel`)
    } finally {
      await slow.close()
    }
  })
})

describe('indigenius', () => {
  const A = '665e4a34c65bb95f2f2d72e1'
  const B = '665e4a34c65bb95f2f2d72e2'
  const C = '665e4a34c65bb95f2f2d72e3'
  let fake: FakeIndigenius
  let conn: string
  beforeAll(async () => {
    fake = await startFakeIndigenius({ workflows: [{ _id: A, title: 'Lead follow-up' }, { _id: B, title: 'Reminders' }, { _id: C, title: 'Surveys' }] })
    conn = await t.connection('indigenius', fake.url, { apiKey: 'ind-key' })
  })
  afterAll(async () => { await fake?.close() })

  it('tests the connection and discovers the workflows; a read-only key is told its scope', async () => {
    expect((await t.client.post(`/v1/connections/${conn}/test`)).body.ok).toBe(true)
    const list = await t.client.get(`/v1/connections/${conn}/workflows`)
    expect(list.body.items.map((w: any) => [w.id, w.name])).toEqual([[A, 'Lead follow-up'], [B, 'Reminders'], [C, 'Surveys']])
    const bad = await t.connection('indigenius', fake.url, { apiKey: 'nope' })
    expect((await t.client.post(`/v1/connections/${bad}/test`)).body.ok).toBe(false)
  })

  it('poll path: follows the job to completed without a callback', async () => {
    const wf = await t.workflow(conn, A, { config: { pushCallback: false } })
    const runId = await t.trigger(wf)
    const sub = t.subscribe(runId)
    const jobId = await upstreamIdOf(runId)
    expect(fake.state.workflows.get(A)!.callbackUrl).toBeUndefined()
    await fake.advance(jobId, 'running', { progress: 0.5 })
    await until(async () => (await t.run(runId)).progress === 0.5, WAIT, 'progress 0.5')
    await fake.advance(jobId, 'completed')
    const events = await sub.finished('completed')
    expect(fake.state.pushes).toHaveLength(0)
    expect((await t.run(runId)).result).toEqual({ summary: 'workflow finished', calls: 1 })
    expect(statusChanges(events, 'completed')).toBe(1)
  })

  it('push path: the workflow callback completes the run at once', async () => {
    const wf = await t.workflow(conn, B, { poll_policy: { first_interval_ms: 60_000, max_interval_ms: 60_000 } })
    const runId = await t.trigger(wf)
    const sub = t.subscribe(runId)
    const jobId = await upstreamIdOf(runId)
    const target = fake.state.workflows.get(B)!
    expect(target.callbackUrl).toMatch(new RegExp(`^${server.url}/v1/callbacks/${runId}\\?exp=\\d+&sig=`))
    expect(target.webhook?.url).toBe(target.callbackUrl)
    const started = Date.now()
    await fake.advance(jobId, 'completed', { result: { calls: 7 } })
    const events = await sub.finished('completed')
    expect(Date.now() - started).toBeLessThan(3_000)
    expect(fake.state.pushes.map((p) => p.status)).toEqual([202])
    expect((await t.run(runId)).result).toEqual({ calls: 7 })
    expect(fake.count('GET', `/v1/workflows/jobs/${jobId}`)).toBe(0)
    expect(statusChanges(events, 'completed')).toBe(1)
  })

  it('a push and a poll that report the same change make one event', async () => {
    const wf = await t.workflow(conn, C)
    const runId = await t.trigger(wf)
    const jobId = await upstreamIdOf(runId)
    const url = fake.state.workflows.get(C)!.callbackUrl!
    await fake.advance(jobId, 'running', { progress: 0.4 })
    await until(async () => (await t.run(runId)).progress === 0.4, WAIT, 'polled progress')
    const before = (await t.history(runId)).length
    // The same state pushed (twice) and polled again: nothing new.
    expect((await post(url, { jobId, state: 'running', progress: 0.4 })).status).toBe(202)
    expect((await post(url, { jobId, state: 'running', progress: 0.4 })).status).toBe(202)
    await sleep(400)
    expect((await t.history(runId)).length).toBe(before)
    // Pushed first, then polled: one progress event.
    expect((await post(url, { jobId, state: 'running', progress: 0.8 })).status).toBe(202)
    await fake.advance(jobId, 'running', { progress: 0.8 })
    await sleep(400)
    await fake.advance(jobId, 'completed', { progress: 1 })
    const done = await t.waitStatus(runId, ['completed'])
    expect(done.status).toBe('completed')
    await sleep(400)
    const events = await t.history(runId)
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1))
    expect(statusChanges(events, 'completed')).toBe(1)
    expect(statusChanges(events, 'running')).toBe(1) // from the trigger's answer; the polls and pushes add none
    expect(events.filter((e) => e.type === 'run.progress' && e.data.progress === 0.8)).toHaveLength(1)
    expect(events.filter((e) => e.type === 'run.progress' && e.data.progress === 0.4)).toHaveLength(1)
  })
})

describe('interactly', () => {
  const WF = '5eb7cf5a86d9755df3a6c593'
  let fake: FakeInteractly
  let wf: string
  beforeAll(async () => {
    fake = await startFakeInteractly()
    const conn = await t.connection('interactly', fake.url, { apiKey: 'ix-token' })
    wf = await t.workflow(conn, WF, { input_template: { miscellaneous: { source: 'e2e' } } })
  })
  afterAll(async () => { await fake?.close() })

  it('streams outputs as run.output events; pause, resume and input go through the API', async () => {
    const runId = await t.trigger(wf, { variables: { name: 'Ada' }, runtime_variables: { slot: 'am' } })
    const sub = t.subscribe(runId)
    const upstreamId = await upstreamIdOf(runId)
    const paused = await t.client.post(`/v1/runs/${runId}/pause`, {})
    expect(paused.status, JSON.stringify(paused.body)).toBe(200)
    expect(paused.body.status).toBe('paused')
    expect((await t.client.post(`/v1/runs/${runId}/pause`, {})).status).toBe(409)
    const resumed = await t.client.post(`/v1/runs/${runId}/resume`, {})
    expect(resumed.body.status).toBe('running')
    const input = await t.client.post(`/v1/runs/${runId}/input`, { data: { thread_to_node_inputs: { t1: { text: 'yes' } } } })
    expect(input.status, JSON.stringify(input.body)).toBe(200)
    expect((await t.client.post(`/v1/runs/${runId}/input`, { data: { nope: 1 } })).status).toBe(409)
    fake.advance(upstreamId, 'completed', [{ type: 'message', text: 'bye' }], { t1: { answer: 42 } })
    const events = await sub.finished('completed')
    const outputs = events.filter((e) => e.type === 'run.output').map((e) => e.data.key)
    expect(outputs).toEqual(expect.arrayContaining(['pair0.event0', 'pair1.event0', 'pair2.event0', 'pair3.event0', 'pair3.event1', 'pair3.thread_outputs']))
    expect(new Set(outputs).size).toBe(outputs.length)
    expect(events.filter((e) => e.type === 'run.command').map((e) => e.data.command)).toEqual(['pause', 'resume', 'input'])
    expect(fake.state.commands.map((c) => c.command)).toEqual(['start', 'pause', 'resume', 'data'])
    const start = fake.state.runs.get(upstreamId)!.workflow_run.input_output_pairs[0]!.run_input
    expect(start).toMatchObject({ dynamic_variables: { name: 'Ada' }, runtime_variables: { slot: 'am' }, miscellaneous: { source: 'e2e' } })
  })

  it('cancels upstream with stop', async () => {
    const runId = await t.trigger(wf)
    const sub = t.subscribe(runId)
    const upstreamId = await upstreamIdOf(runId)
    const res = await t.client.post(`/v1/runs/${runId}/cancel`, {})
    expect(res.body.status).toBe('canceled')
    await sub.finished('canceled')
    expect(fake.state.runs.get(upstreamId)!.workflow_run.status).toBe('stopped')
  })
})
