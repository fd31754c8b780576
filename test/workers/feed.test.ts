/**
 * The tenant feed on Workers: events of concurrent runs reach feed subscribers in id order,
 * without gaps or duplicates (live equals a later replay), filters apply, `after` resumes
 * exactly, and subscribers survive an eviction of the feed object.
 */
import { env, evictDurableObject, SELF } from 'cloudflare:test'
import { describe, expect, it } from 'vitest'
import { call, openWs, running, setupTenant, trigger, until, type WsEvent } from './helpers.ts'

const ids = (events: WsEvent[]) => events.map((e) => e.id)

describe('tenant feed', () => {
  it('orders concurrent runs by id, filters, resumes, and survives an eviction', async () => {
    const t = await setupTenant('feed')
    const all = await openWs('/v1/stream?after=0', t.key)
    const red = await openWs('/v1/stream?after=0&tag=red', t.key)
    const done = await openWs('/v1/stream?status=completed', t.key)
    await until(() => [all, red, done].every((s) => s.messages.some((m) => m.type === 'caught_up')), 5_000, 'feeds caught up')

    const runs = await Promise.all([0, 1, 2, 3, 4, 5].map((i) => trigger(t, [...running(3), { status: 'completed' }], i % 2 ? ['red'] : ['green'])))
    await until(() => all.events.length >= 6, 10_000, 'first events')
    await evictDurableObject(env.FEEDS.get(env.FEEDS.idFromName(t.tenantId)))
    for (const r of runs) await until(async () => (await call('GET', `/v1/runs/${r.id}`, t.key)).body.status === 'completed', 15_000, `run ${r.id}`)

    const total = (await Promise.all(runs.map(async (r) => (await call('GET', `/v1/runs/${r.id}`, t.key)).body.seq as number))).reduce((a, b) => a + b, 0)
    await until(() => all.events.length >= total, 10_000, 'all events on the feed')
    expect(all.events).toHaveLength(total)
    expect(ids(all.events)).toEqual([...ids(all.events)].sort((a, b) => a - b))
    expect(new Set(ids(all.events)).size).toBe(total)

    // What went out live is exactly what a replay from libSQL gives.
    const replay = await openWs('/v1/stream?after=0', t.key)
    await until(() => replay.messages.some((m) => m.type === 'caught_up'), 5_000, 'replay')
    expect(replay.events).toEqual(all.events)
    expect(replay.messages.some((m) => m.type === 'batch')).toBe(true)

    await until(() => red.events.length === all.events.filter((e) => e.tags.includes('red')).length, 5_000, 'the red feed')
    expect(red.events).toEqual(all.events.filter((e) => e.tags.includes('red')))
    await until(() => done.events.length === 6, 5_000, 'the completed feed')
    expect(done.events).toEqual(all.events.filter((e) => e.status === 'completed'))

    // Resume after an id: exactly the events after it.
    const k = Math.floor(total / 2)
    const resumed = await openWs(`/v1/stream?after=${all.events[k]!.id}`, t.key)
    await until(() => resumed.messages.some((m) => m.type === 'caught_up'), 5_000, 'resume')
    expect(resumed.events).toEqual(all.events.slice(k + 1))

    // Another tenant sees none of it.
    const other = await setupTenant('feed-other')
    const theirs = await openWs('/v1/stream?after=0', other.key)
    await until(() => theirs.messages.some((m) => m.type === 'caught_up'), 5_000, 'other tenant')
    expect(theirs.events).toEqual([])
    for (const s of [all, red, done, replay, resumed, theirs]) s.close()
  })

  it('serves the feed over SSE with ids as positions', async () => {
    const t = await setupTenant('feed-sse')
    const run = await trigger(t, [{ status: 'completed' }])
    await until(async () => (await call('GET', `/v1/runs/${run.id}`, t.key)).body.status === 'completed', 10_000, 'completion')
    const history = (await call('GET', `/v1/runs/${run.id}/events`, t.key)).body.events
    const { openSse } = await import('./helpers.ts')
    const sse = await openSse('/v1/stream?after=0', t.key)
    expect(sse.status).toBe(200)
    await until(() => sse.events.length >= history.length, 5_000, 'sse feed events')
    expect(sse.events.map((e) => Number(e.id))).toEqual(history.map((e: any) => e.id))
    sse.close()
  })
})

describe('slow SSE subscribers on Workers', () => {
  it('ends a feed SSE stream that stops reading once more than RUNRELAY_WS_MAX_BUFFERED_BYTES is unread', async () => {
    const t = await setupTenant('feed-sse-slow')
    const { readSse } = await import('../helpers/sse.ts')
    const res = await SELF.fetch('http://runrelay.test/v1/stream?after=0', { headers: { accept: 'text/event-stream', authorization: `Bearer ${t.key}` } })
    expect(res.status).toBe(200)
    // Not read: run.created of each run carries ~900 KiB, 12 of them far past the 4 MiB default.
    const pad = 'x'.repeat(900 * 1024)
    for (let i = 0; i < 12; i++) {
      const r = await call('POST', `/v1/workflows/${t.workflowId}/runs`, t.key, { variables: { script: [{ status: 'completed' }], pad } })
      expect(r.status).toBe(202)
    }
    const events: { id?: string; event?: string; data: string }[] = []
    // Read now: what was queued, then the slow_consumer event, then the end (or the drop after 5 s).
    await Promise.race([readSse(res.body!, events), new Promise((_, rej) => setTimeout(() => rej(new Error('the stream did not end')), 20_000))])
    expect(events.filter((e) => e.event === 'run.created').length).toBeLessThan(12)
    expect(events.at(-1)?.event === 'error' ? JSON.parse(events.at(-1)!.data).code : 'dropped').toMatch(/slow_consumer|dropped/)
  }, 40_000)
})
