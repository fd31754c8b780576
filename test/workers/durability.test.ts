/**
 * The run object across evictions and restarts, and the outbox across a libSQL outage
 * (real workerd; the libSQL test server's outage switch; the fake upstream).
 */
import { env, evictDurableObject, runInDurableObject } from 'cloudflare:test'
import { describe, expect, it } from 'vitest'
import type { RunObject } from '../../src/runtime/workers/run-object.ts'
import { call, oneToN, openWs, running, seqs, setupTenant, trigger, until } from './helpers.ts'

const runStub = (runId: string) => env.RUNS.get(env.RUNS.idFromName(runId))
const setFailing = async (on: boolean) => {
  const res = await fetch(`${env.LIBSQL_URL}/__test/failing?on=${on ? 1 : 0}`, { method: 'POST' })
  expect(res.status).toBe(200)
}
const outboxSize = (runId: string) =>
  runInDurableObject(runStub(runId), (_o: RunObject, state) => state.storage.sql.exec<{ n: number }>('SELECT count(*) AS n FROM outbox').one().n)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe('run object durability', () => {
  it('keeps hibernatable sockets across an eviction and replays after it', async () => {
    const t = await setupTenant('hibernate', { first_interval_ms: 150, max_interval_ms: 150 })
    const run = await trigger(t, running(200))
    const sub = await openWs(`/v1/runs/${run.id}/stream`, t.key)
    await until(() => sub.events.length >= 4, 10_000, 'a few events before the eviction')

    await evictDurableObject(runStub(run.id)) // hibernates the socket, drops the instance
    const before = sub.events.length
    await until(() => sub.events.length >= before + 3, 10_000, 'events after the eviction on the same socket')
    expect(sub.closeInfo).toBeNull()

    await evictDurableObject(runStub(run.id))
    const cancel = await call('POST', `/v1/runs/${run.id}/cancel`, t.key, { reason: 'enough' })
    expect(cancel.status).toBe(200)
    expect(await sub.closed).toMatchObject({ code: 1000 })
    expect(seqs(sub.events)).toEqual(oneToN(sub.events.length))
    expect(sub.events.at(-1)).toMatchObject({ status: 'canceled' })

    // A new subscriber resuming mid-way gets exactly the rest.
    const k = Math.floor(sub.events.length / 2)
    const late = await openWs(`/v1/runs/${run.id}/stream?after=${k}`, t.key)
    await late.closed
    expect(late.events).toEqual(sub.events.slice(k))
    // The finished run left nothing behind in its object.
    const rows = await runInDurableObject(runStub(run.id), (_o: RunObject, state) => state.storage.sql.exec('SELECT key FROM meta').toArray().length)
    expect(rows).toBe(0)
    expect(await runInDurableObject(runStub(run.id), (_o: RunObject, state) => state.storage.getAlarm())).toBeNull()
  })

  it('survives a restart of the run object mid-run (sockets closed, run resumes from storage)', async () => {
    const t = await setupTenant('restart', { first_interval_ms: 100, max_interval_ms: 100 })
    const run = await trigger(t, [...running(25), { status: 'completed', result: { n: 25 } }])
    const first = await openWs(`/v1/runs/${run.id}/stream`, t.key)
    await until(() => first.events.length >= 5, 10_000, 'progress before the restart')

    await evictDurableObject(runStub(run.id), { webSockets: 'close' })
    await first.closed
    const last = first.events.at(-1)!.seq
    const second = await openWs(`/v1/runs/${run.id}/stream?after=${last}`, t.key)
    expect(await Promise.race([second.closed, sleep(15_000).then(() => null)])).toMatchObject({ code: 1000 })
    const all = [...first.events, ...second.events]
    expect(seqs(all)).toEqual(oneToN(all.length))
    expect(all.at(-1)).toMatchObject({ status: 'completed', data: { result: { n: 25 } } })
    const final = (await call('GET', `/v1/runs/${run.id}`, t.key)).body
    expect(final.status).toBe('completed')
    expect(final.seq).toBe(all.length)
    // One trigger: a single upstream job for the run, never re-triggered by the restart.
    expect(all.filter((e) => e.type === 'run.status_changed' && e.data.to === 'queued')).toHaveLength(0)
    expect(final.upstream_id).toMatch(/^job-\d+$/)
  })

  it('loses nothing and publishes nothing early while libSQL is down', async () => {
    const t = await setupTenant('outage', { first_interval_ms: 100, max_interval_ms: 100 })
    const run = await trigger(t, [...running(60), { status: 'completed', result: { survived: true } }])
    const sub = await openWs(`/v1/runs/${run.id}/stream`, t.key)
    const feed = await openWs('/v1/stream?after=0', t.key)
    await until(() => sub.events.length >= 3, 10_000, 'progress before the outage')

    await setFailing(true)
    let during: number
    try {
      await sleep(300) // a flush already on the wire may still land
      during = sub.events.length
      await until(async () => (await outboxSize(run.id)) >= 5, 10_000, 'events piling up in the outbox')
      // Nothing that is not in libSQL reaches a subscriber.
      expect(sub.events.length).toBe(during)
      const health = await call('GET', '/healthz')
      expect(health.status).toBe(503)
      expect(health.body.db).toBe('down')
      // The API says what is wrong and when to come back, never a 500.
      const refused = await call('POST', `/v1/workflows/${t.workflowId}/runs`, t.key, { variables: { script: [{ status: 'completed' }] } }, { 'idempotency-key': 'outage-1' })
      expect(refused.status).toBe(503)
      expect(refused.body.error.code).toBe('store_unavailable')
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0)
    } finally {
      await setFailing(false)
    }
    // Its retry with the same key makes one run, and a second retry answers that run again.
    const retried = await call('POST', `/v1/workflows/${t.workflowId}/runs`, t.key, { variables: { script: [{ status: 'completed' }] } }, { 'idempotency-key': 'outage-1' })
    expect(retried.status).toBe(202)
    const again = await call('POST', `/v1/workflows/${t.workflowId}/runs`, t.key, { variables: { script: [{ status: 'completed' }] } }, { 'idempotency-key': 'outage-1' })
    expect(again.body.id).toBe(retried.body.id)

    expect(await Promise.race([sub.closed, sleep(20_000).then(() => null)])).toMatchObject({ code: 1000 })
    expect(sub.events.length).toBeGreaterThan(during + 5)
    expect(seqs(sub.events)).toEqual(oneToN(sub.events.length))
    expect(sub.events.at(-1)).toMatchObject({ status: 'completed', data: { result: { survived: true } } })
    const history = (await call('GET', `/v1/runs/${run.id}/events?limit=1000`, t.key)).body.events
    expect(history).toEqual(sub.events)
    expect(await outboxSize(run.id)).toBe(0)

    await until(() => feed.events.filter((e) => e.run_id === run.id).length === history.length, 10_000, 'the feed to catch up')
    expect(feed.events.filter((e) => e.run_id === run.id)).toEqual(history)
    feed.close()
  })
})
