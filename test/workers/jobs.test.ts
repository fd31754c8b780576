/**
 * Background jobs on Workers (JobsObject): a one-off schedule fires and its run completes, the
 * schedule is moved on by the jobs object's alarm; a webhook endpoint receives a signed
 * delivery at a receiver outside workerd (globalSetup's, on 127.0.0.1).
 */
import { env, runInDurableObject } from 'cloudflare:test'
import { describe, expect, it } from 'vitest'
import { call, running, setupTenant, trigger, until } from './helpers.ts'

interface ReceivedHook { at: number; headers: Record<string, string>; body: string }

const received = async (name: string): Promise<ReceivedHook[]> => (await fetch(`${env.WEBHOOK_RECEIVER_URL}/__received/${name}`)).json()

describe('runrelay on Workers: schedules, webhooks, retention', () => {
  it('fires a one-off schedule: its run completes (demo connector) and the schedule is finished', async () => {
    const t = await setupTenant('jobs-schedule')
    const conn = await call('POST', '/v1/connections', t.key, { name: 'demo', provider: 'demo' })
    expect(conn.status).toBe(201)
    const wf = await call('POST', '/v1/workflows', t.key, {
      name: 'demo', connection_id: conn.body.id, upstream_workflow_id: 'demo', config: { durationMs: 300, steps: 2, queueMs: 0 },
    })
    expect(wf.status).toBe(201)
    const at = new Date(Date.now() + 1_500).toISOString()
    const sch = await call('POST', '/v1/schedules', t.key, { workflow_id: wf.body.id, at })
    expect(sch.status).toBe(201)
    expect(sch.body).toMatchObject({ kind: 'at', state: 'active', fires: 0 })
    const runId = sch.body.next_run_id as string
    expect((await call('GET', `/v1/runs/${runId}`, t.key)).body.status).toBe('scheduled')

    const done = await until(async () => {
      const r = await call('GET', `/v1/runs/${runId}`, t.key)
      return ['completed', 'failed', 'canceled', 'timed_out'].includes(r.body.status) ? r.body : null
    }, 15_000, 'the scheduled run to finish')
    expect(done.status).toBe('completed')
    expect(Date.parse(done.started_at ?? done.created_at)).toBeGreaterThanOrEqual(Date.parse(at) - 50)

    // The jobs object's alarm (at the occurrence's time) claimed it and moved the schedule on.
    const after = await until(async () => {
      const s = await call('GET', `/v1/schedules/${sch.body.id}`, t.key)
      return s.body.fires === 1 ? s.body : null
    }, 10_000, 'the schedule to record its fire')
    expect(after).toMatchObject({ state: 'finished', last_run_id: runId, next_run_id: null, next_fire_at: null })
  })

  it('delivers a signed webhook to a receiver outside workerd', async () => {
    const t = await setupTenant('jobs-webhook')
    const name = `wh-${Date.now()}`
    const ep = await call('POST', '/v1/webhooks', t.key, { url: `${env.WEBHOOK_RECEIVER_URL}/hooks/${name}`, workflow_id: t.workflowId, events: 'terminal' })
    expect(ep.status).toBe(201)
    expect(ep.body.secret).toMatch(/^whsec_/)
    const run = await trigger(t, [...running(1), { status: 'completed', result: { ok: 1 } }])

    const hooks = await until(async () => {
      const list = await received(name)
      return list.length ? list : null
    }, 15_000, 'the webhook to arrive')
    expect(hooks).toHaveLength(1)
    const hook = hooks[0]!
    expect(hook.headers['webhook-id']).toMatch(/^msg_/)
    expect(hook.headers['webhook-signature']).toMatch(/^v1,/)
    const body = JSON.parse(hook.body)
    expect(body).toMatchObject({ type: 'run.status_changed', data: { event: { run_id: run.id, status: 'completed' }, run: { id: run.id, status: 'completed' } } })

    const log = await until(async () => {
      const r = await call('GET', `/v1/webhook-deliveries?run_id=${run.id}`, t.key)
      return r.body.items?.[0]?.status === 'succeeded' ? r.body.items : null
    }, 10_000, 'the delivery to be recorded as succeeded')
    expect(log).toHaveLength(1)
    expect(log[0]).toMatchObject({ id: hook.headers['webhook-id'], endpoint_id: ep.body.id, attempts: 1, last_status_code: 200 })
  })

  it('keeps the jobs object armed while an endpoint is enabled', async () => {
    const stub = env.JOBS.get(env.JOBS.idFromName('jobs'))
    await stub.kick()
    const alarm = await runInDurableObject(stub, (_i, state) => state.storage.getAlarm())
    expect(alarm).not.toBeNull()
    // An endpoint is enabled (previous test): the next scan is within the jobs interval.
    expect(alarm! - Date.now()).toBeLessThanOrEqual(Number(env.RUNRELAY_JOBS_INTERVAL_MS) + 1_000)
  })
})
