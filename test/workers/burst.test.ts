/**
 * A connect burst on one run object while the run publishes: 200 WebSocket subscribers with
 * different `after` values (0, mid-history, the current seq, past it) connect at once; their
 * replays are served in shared batches outside the object's lock, and events published during
 * a batch's read are read again before the sockets go live. Each subscriber must get exactly
 * the events after its `after`, in seq order, once: the replayed ones, then the live ones,
 * also across an eviction (hibernation: positions come from the attachments), until the close.
 */
import { env, evictDurableObject } from 'cloudflare:test'
import { describe, expect, it } from 'vitest'
import { call, openWs, running, setupTenant, trigger, until } from './helpers.ts'
import { logFigures } from '../helpers/figures.ts'

const SUBS = 200
const runStub = (runId: string) => env.RUNS.get(env.RUNS.idFromName(runId))

describe('run object: connect burst', () => {
  it(`serves ${SUBS} sockets with different positions their missing events, then live ones, once each`, async () => {
    const t = await setupTenant('burst', { first_interval_ms: 100, max_interval_ms: 100 })
    const run = await trigger(t, running(400))
    const seqNow = async () => (await call('GET', `/v1/runs/${run.id}`, t.key)).body.seq as number
    const start = await until(async () => { const s = await seqNow(); return s >= 8 ? s : 0 }, 15_000, 'some history')

    // Positions from 0 to a few past the current seq; the run keeps publishing meanwhile.
    const afters = Array.from({ length: SUBS }, (_, i) => i % (start + 4))
    const t0 = Date.now()
    const subs = await Promise.all(afters.map((after) => openWs(`/v1/runs/${run.id}/stream?after=${after}`, t.key)))
    await until(() => subs.every((s) => s.messages.some((m) => m.type === 'caught_up')), 20_000, 'every subscriber caught up')
    const caughtUpMs = Date.now() - t0

    // Live events reach every socket; then an eviction (the sockets hibernate) and more live events.
    const live = (await seqNow()) + 2
    await until(() => subs.every((s) => s.events.some((e) => e.seq >= live)), 15_000, 'live events on every socket')
    await evictDurableObject(runStub(run.id))
    const later = (await seqNow()) + 2
    await until(() => subs.every((s) => s.events.some((e) => e.seq >= later)), 15_000, 'live events after the eviction')

    const cancel = await call('POST', `/v1/runs/${run.id}/cancel`, t.key, {})
    expect(cancel.status).toBe(200)
    const closes = await Promise.race([
      Promise.all(subs.map((s) => s.closed)),
      new Promise<never>((_, rej) => setTimeout(() => rej(new Error('sockets did not close')), 15_000)),
    ])
    expect(closes.every((c) => c.code === 1000)).toBe(true)

    const history = (await call('GET', `/v1/runs/${run.id}/events?limit=1000`, t.key)).body.events as { seq: number }[]
    expect(history.at(-1)).toMatchObject({ type: 'run.status_changed', status: 'canceled' })
    expect(history.map((e) => e.seq)).toEqual(Array.from({ length: history.length }, (_, i) => i + 1))
    subs.forEach((s, i) => {
      const after = afters[i]!
      // Exactly the events after `after`, as libSQL has them: no gap, no duplicate, in order.
      expect(s.events).toEqual(history.filter((e) => e.seq > after))
      expect(s.messages[0]).toMatchObject({ type: 'hello', after })
      const k = s.messages.findIndex((m) => m.type === 'caught_up')
      const position = s.messages[k].position as number
      expect(position).toBeGreaterThanOrEqual(after)
      // Replayed before caught_up, live after it.
      const seqsBefore = s.messages.slice(0, k).flatMap((m) => (m.type === 'event' ? [m.event.seq] : m.type === 'batch' ? m.events.map((e: any) => e.seq) : []))
      expect(seqsBefore.every((q) => q <= position)).toBe(true)
      expect(s.events.slice(seqsBefore.length).every((e) => e.seq > position)).toBe(true)
    })
    logFigures('connect burst', `${SUBS} subscribers caught up in ${caughtUpMs} ms`)
  }, 90_000)
})
