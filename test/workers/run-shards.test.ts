/**
 * The fan-out tier of a hot run (RUNRELAY_RUN_SHARDS = 4, RUNRELAY_RUN_SHARD_AFTER = 250 in
 * wrangler.test.toml): 400 WebSocket subscribers of one run, the first 250 held by the run
 * object and the rest by 4 shard objects it feeds. Every subscriber, wherever it is held, gets
 * exactly the events after its `after`, in seq order, once: across an eviction of a shard (its
 * positions come from the attachments and its durable top), a lost delivery (completed from
 * libSQL), and a resume with after= onto a shard; all close 1000 when the run ends. A burst of
 * joins on one shard replays in batches: a few libSQL reads, not one per socket.
 */
import { env, evictDurableObject, runInDurableObject } from 'cloudflare:test'
import { describe, expect, it } from 'vitest'
import { STREAM_HEADER } from '../../src/runtime/workers/streams.ts'
import { call, openWs, recordWs, running, setupTenant, trigger, until } from './helpers.ts'
import { logFigures } from '../helpers/figures.ts'

const DIRECT = 250
const SUBS = 400
const SHARDS = 4
const shardStub = (runId: string, k: number) => env.RUN_SHARDS.get(env.RUN_SHARDS.idFromName(`${runId}:${k}`))

/** A WebSocket opened on shard k directly: as the run object routes it, or (routed) as the Worker does with RUNRELAY_RUN_SHARD_AFTER=0. */
async function openShardWs(runId: string, tenantId: string, after: number, k: number, routed: boolean) {
  const res = await shardStub(runId, k).fetch('https://runrelay.internal/stream', {
    headers: { upgrade: 'websocket', [STREAM_HEADER]: JSON.stringify({ tenantId, transport: 'ws', after, runId, shard: routed ? k : undefined }) },
  })
  return recordWs(res)
}

describe('run shards: a hot run over 4 socket-holder objects', () => {
  it(`serves ${SUBS} subscribers (${SUBS - DIRECT} on shards) every event after their position once, in order, then 1000`, async () => {
    const t = await setupTenant('shards', { first_interval_ms: 100, max_interval_ms: 100 })
    const run = await trigger(t, running(120))
    const seqNow = async () => (await call('GET', `/v1/runs/${run.id}`, t.key)).body.seq as number
    const start = await until(async () => { const s = await seqNow(); return s >= 5 ? s : 0 }, 15_000, 'some history')

    // The run object's own sockets first (so the rest are routed to shards), in parallel batches.
    const afters = Array.from({ length: SUBS }, (_, i) => i % (start + 3))
    const t0 = Date.now()
    const direct = await Promise.all(afters.slice(0, DIRECT).map((after) => openWs(`/v1/runs/${run.id}/stream?after=${after}`, t.key)))
    const sharded = await Promise.all(afters.slice(DIRECT).map((after) => openWs(`/v1/runs/${run.id}/stream?after=${after}`, t.key)))
    const subs = [...direct, ...sharded]
    await until(() => subs.every((s) => s.messages.some((m) => m.type === 'caught_up')), 20_000, 'every subscriber caught up')
    const caughtUpMs = Date.now() - t0

    const stats = await Promise.all(Array.from({ length: SHARDS }, (_, k) => shardStub(run.id, k).stats()))
    expect(stats.every((s) => s.sockets > 0)).toBe(true)
    expect(stats.reduce((n, s) => n + s.sockets, 0)).toBeGreaterThanOrEqual(SUBS - DIRECT - 10)

    // Live events on every socket; then a shard is evicted (its sockets hibernate) and more arrive.
    const live = (await seqNow()) + 2
    await until(() => subs.every((s) => s.events.some((e) => e.seq >= live)), 15_000, 'live events on every socket')
    await evictDurableObject(shardStub(run.id, 0))
    const later = (await seqNow()) + 2
    await until(() => subs.every((s) => s.events.some((e) => e.seq >= later)), 15_000, 'live events after the eviction')

    // A stale batch (already sent) is skipped: nothing goes out twice.
    const old = (await call('GET', `/v1/runs/${run.id}/events?after=0&limit=5`, t.key)).body.events
    await shardStub(run.id, 1).deliver(run.id, old)

    // Lost deliveries: shard 9 is not one the run object feeds, so its socket only learns of
    // events through the shard's heartbeat read, and a batch that skips ahead (the latest event
    // alone) must be completed from libSQL first. The terminal event reaches it by the heartbeat.
    const orphan = await openShardWs(run.id, t.tenantId, 0, 9, false)
    // Routed by the Worker (RUNRELAY_RUN_SHARD_AFTER=0): the shard records itself with the run object.
    const routed = await openShardWs(run.id, t.tenantId, 0, 6, true)
    await until(() => routed.messages.some((m) => m.type === 'caught_up'), 10_000, 'routed caught up')
    const recorded = await runInDurableObject(env.RUNS.get(env.RUNS.idFromName(run.id)), (_o, state) =>
      JSON.parse(state.storage.sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = 'shards'").one().value) as number[])
    expect(recorded).toContain(6)
    expect(recorded).not.toContain(9)
    subs.push(routed)
    afters.push(0)
    await until(() => orphan.messages.some((m) => m.type === 'caught_up'), 10_000, 'orphan caught up')
    for (let i = 0; i < 3; i++) {
      await until(async () => (await seqNow()) > Math.max(0, ...orphan.events.map((e) => e.seq)) + 1, 10_000, 'events the orphan has not had')
      const tail = (await call('GET', `/v1/runs/${run.id}/events?after=${(await seqNow()) - 1}&limit=1`, t.key)).body.events
      await shardStub(run.id, 9).deliver(run.id, tail)
    }
    subs.push(orphan)
    afters.push(0)

    // A resume after a position, routed to a shard (the run object is past its threshold).
    const some = sharded[0]!
    const k = Math.floor(some.events.length / 2)
    const resumed = await openWs(`/v1/runs/${run.id}/stream?after=${some.events[k]!.seq}`, t.key)
    subs.push(resumed)
    afters.push(some.events[k]!.seq)

    const cancel = await call('POST', `/v1/runs/${run.id}/cancel`, t.key, {})
    expect(cancel.status).toBe(200)
    const closes = await Promise.race([
      Promise.all(subs.map((s) => s.closed)),
      new Promise<never>((_, rej) => setTimeout(() => rej(new Error('sockets did not close')), 20_000)),
    ])
    expect(closes.every((c) => c.code === 1000)).toBe(true)

    const history = (await call('GET', `/v1/runs/${run.id}/events?limit=1000`, t.key)).body.events as { seq: number }[]
    expect(history.at(-1)).toMatchObject({ type: 'run.status_changed', status: 'canceled' })
    subs.forEach((s, i) => {
      const after = afters[i]!
      expect(s.events).toEqual(history.filter((e) => e.seq > after))
      expect(s.messages[0]).toMatchObject({ type: 'hello', after })
    })
    const final = await Promise.all(Array.from({ length: SHARDS }, (_, k) => shardStub(run.id, k).stats()))
    expect(final.every((s) => s.finished && s.top === history.length)).toBe(true)
    expect(await shardStub(run.id, 6).stats()).toMatchObject({ finished: true, top: history.length })
    logFigures('run shards', `${SUBS} subscribers (${SUBS - DIRECT} over ${SHARDS} shards: ${stats.map((s) => s.sockets).join('/')}) caught up in ${caughtUpMs} ms`)
  }, 90_000)

  it('replays a burst of joins on one shard in batches: a few libSQL reads, not one per socket', async () => {
    const BURST = 60
    const t = await setupTenant('shard-burst', { first_interval_ms: 100, max_interval_ms: 100 })
    const run = await trigger(t, running(60))
    const start = await until(async () => { const s = (await call('GET', `/v1/runs/${run.id}`, t.key)).body.seq as number; return s >= 5 ? s : 0 }, 15_000, 'some history')
    // Routed as the Worker does (the shard registers with the run object, which then feeds it), all at once, at different positions.
    const afters = Array.from({ length: BURST }, (_, i) => i % (start + 1))
    const subs = await Promise.all(afters.map((after) => openShardWs(run.id, t.tenantId, after, 12, true)))
    await until(() => subs.every((s) => s.messages.some((m) => m.type === 'caught_up')), 20_000, 'every burst socket caught up')
    const stats = await shardStub(run.id, 12).stats()
    expect(stats.sockets).toBe(BURST)
    // Batched: one read per batch (the first socket's batch, then the rest, plus a catch-up read
    // under the lock at most each; about 6 when the joins arrive together, a few more when a loaded
    // machine spreads them out), never one per socket.
    expect(stats.replayReads).toBeLessThanOrEqual(BURST / 5)

    expect((await call('POST', `/v1/runs/${run.id}/cancel`, t.key, {})).status).toBe(200)
    const closes = await Promise.race([
      Promise.all(subs.map((s) => s.closed)),
      new Promise<never>((_, rej) => setTimeout(() => rej(new Error('sockets did not close')), 20_000)),
    ])
    expect(closes.every((c) => c.code === 1000)).toBe(true)
    const history = (await call('GET', `/v1/runs/${run.id}/events?limit=1000`, t.key)).body.events as { seq: number }[]
    subs.forEach((s, i) => expect(s.events).toEqual(history.filter((e) => e.seq > afters[i]!)))
    expect(await until(async () => (await shardStub(run.id, 12).stats()).finished, 10_000, 'the shard recorded the end')).toBe(true)
    logFigures('run shards', `a burst of ${BURST} joins on one shard replayed with ${stats.replayReads} libSQL reads`)
  }, 60_000)
})
