import { describe, expect, it } from 'vitest'
import type { RunEvent } from '../../src/core/domain.ts'
import { deliverFeedPage, fanOutRun, replayFeed, ReplayBatches, type FeedStreamRecord, type FeedSubscriber, type ReplayHost, type RunStreamRecord } from '../../src/core/held-streams.ts'
import { Mutex } from '../../src/core/mutex.ts'

// The core's held streams over an in-memory HeldOut (the edge every Durable Object implements
// with its WebSockets and their attachments); workerd's real sockets are the Workers lane's.

const ev = (seq: number, status: RunEvent['status'] = 'running', type: RunEvent['type'] = 'run.progress'): RunEvent =>
  ({ id: 100 + seq, seq, run_id: 'run_1', type, at: new Date(0).toISOString(), workflow_id: 'wf', status, tags: [], data: {} })

/** Streams named by string: what each was sent, how it closed, its record. */
function holder(history: RunEvent[], over: Partial<ReplayHost<string>> = {}) {
  const sent = new Map<string, unknown[]>()
  const closes = new Map<string, number>()
  const records = new Map<string, RunStreamRecord>()
  let reads = 0
  const host: ReplayHost<string> = {
    send: (s, text) => { sent.set(s, [...(sent.get(s) ?? []), JSON.parse(text)]) },
    close: (s, code) => { closes.set(s, code) },
    record: (s) => records.get(s) ?? null,
    save: (s, rec) => { records.set(s, rec) },
    lock: new Mutex(),
    read: async (_runId, after, limit) => { reads++; return history.filter((e) => e.seq > after).slice(0, limit) },
    runId: () => 'run_1',
    sentTop: () => 0,
    finished: () => false,
    afterBatch: async () => {},
    log: () => {},
    ...over,
  }
  const seqsOf = (s: string) => (sent.get(s) ?? []).flatMap((m: any) => m.type === 'batch' ? m.events.map((e: RunEvent) => e.seq) : m.type === 'event' ? [m.event.seq] : [])
  return { host, sent, closes, records, seqsOf, reads: () => reads }
}

describe('held run streams (hibernated sockets as records)', () => {
  it('replays a batch of joining streams with one read: each gets the events after its position once, then caught_up, and is ready', async () => {
    const h = holder([1, 2, 3, 4, 5].map((n) => ev(n)))
    const joins = [['a', 0], ['b', 2], ['c', 5]] as const
    for (const [s, pos] of joins) h.records.set(s, { ready: false, last: pos })
    await new ReplayBatches(h.host).add(...joins.map(([s, pos]) => ({ s, runId: 'run_1', pos, done: false })))
    expect(h.reads()).toBe(1)
    expect(h.seqsOf('a')).toEqual([1, 2, 3, 4, 5])
    expect(h.seqsOf('b')).toEqual([3, 4, 5])
    expect(h.seqsOf('c')).toEqual([])
    for (const [s] of joins) {
      expect(h.sent.get(s)!.at(-1)).toEqual({ type: 'caught_up', position: 5 })
      expect(h.records.get(s)).toEqual({ ready: true, last: 5 })
    }
    expect(h.closes.size).toBe(0)
  })

  it('reads again under the lock what live sends gave the ready streams during the read, and ends streams of a finished run 1000', async () => {
    const history = [1, 2, 3].map((n) => ev(n))
    // While the first read runs, seqs 4 and 5 (the terminal event) are published to the ready streams.
    const h = holder(history, {
      read: async (_runId, after) => {
        const page = history.filter((e) => e.seq > after)
        if (history.length === 3) history.push(ev(4), ev(5, 'completed', 'run.status_changed'))
        return page
      },
      sentTop: () => 5,
      finished: () => true,
    })
    h.records.set('a', { ready: false, last: 0 })
    await new ReplayBatches(h.host).add({ s: 'a', runId: 'run_1', pos: 0, done: false })
    expect(h.seqsOf('a')).toEqual([1, 2, 3, 4, 5])
    expect(h.closes.get('a')).toBe(1000)
    // The terminal event closes it: no caught_up after the close.
    expect(h.sent.get('a')!.some((m: any) => m.type === 'caught_up')).toBe(false)
  })

  it('sends a stream resumed at the end of a finished run caught_up, then closes it 1000', async () => {
    const h = holder([ev(1), ev(2, 'completed', 'run.status_changed')], { finished: () => true })
    h.records.set('a', { ready: false, last: 2 })
    await new ReplayBatches(h.host).add({ s: 'a', runId: 'run_1', pos: 2, done: false })
    expect(h.sent.get('a')).toEqual([{ type: 'caught_up', position: 2 }])
    expect(h.closes.get('a')).toBe(1000)
  })

  it('resumes the replays an eviction cut short from the recorded positions, and leaves ready streams alone', async () => {
    const h = holder([1, 2, 3, 4].map((n) => ev(n)))
    h.records.set('cut', { ready: false, last: 2 })
    h.records.set('live', { ready: true, last: 4 })
    await new ReplayBatches(h.host).resume([['cut', h.records.get('cut')!], ['live', h.records.get('live')!], ['gone', null]])
    expect(h.seqsOf('cut')).toEqual([3, 4])
    expect(h.records.get('cut')).toEqual({ ready: true, last: 4 })
    expect(h.sent.has('live')).toBe(false)
  })

  it('serves joins after a resume that found nothing to resume', async () => {
    const h = holder([ev(1)])
    const batches = new ReplayBatches(h.host)
    await batches.resume([])
    h.records.set('a', { ready: false, last: 0 })
    await batches.add({ s: 'a', runId: 'run_1', pos: 0, done: false })
    expect(h.records.get('a')).toEqual({ ready: true, last: 1 })
  })

  it('closes the batch 1013 when the history cannot be read', async () => {
    const h = holder([], { read: async () => { throw new Error('libSQL down') } })
    h.records.set('a', { ready: false, last: 0 })
    await new ReplayBatches(h.host).add({ s: 'a', runId: 'run_1', pos: 0, done: false })
    expect(h.closes.get('a')).toBe(1013)
  })

  it('fans live events out to the ready streams only, from each one\'s position, one frame per position, and closes 1000 at the terminal event', () => {
    const h = holder([])
    const held: Array<[string, RunStreamRecord | null]> = [
      ['behind', { ready: true, last: 3 }], ['ahead', { ready: true, last: 6 }], ['replaying', { ready: false, last: 0 }], ['gone', null], ['same', { ready: true, last: 3 }],
    ]
    fanOutRun(h.host, held, [ev(5), ev(6), ev(7, 'failed', 'run.status_changed')])
    // Ready at 3 with events from 5: it was sent 4 already (published without gaps), so it gets 5..7.
    expect(h.seqsOf('behind')).toEqual([5, 6, 7])
    expect(h.seqsOf('ahead')).toEqual([7])
    expect(h.sent.has('replaying')).toBe(false)
    expect(h.seqsOf('same')).toEqual([5, 6, 7])
    expect([...h.closes]).toEqual([['behind', 1000], ['ahead', 1000], ['same', 1000]])
  })

  it('fans out from what the holder has sent to all (a shard\'s top), skipping a stream below the batch', () => {
    const h = holder([])
    const held: Array<[string, RunStreamRecord]> = [['old', { ready: true, last: 2 }], ['new', { ready: true, last: 7 }], ['low', { ready: true, last: 1 }]]
    // The batch (completed from libSQL) starts at 3; the holder has sent up to 5 to every ready stream.
    fanOutRun(h.host, held, [ev(3), ev(4), ev(5), ev(6), ev(7), ev(8)], 5)
    expect(h.seqsOf('old')).toEqual([6, 7, 8])
    expect(h.seqsOf('new')).toEqual([8])
    expect(h.seqsOf('low')).toEqual([6, 7, 8])
    // Nothing sent to all yet: one made ready at 1, below a batch that starts at 9, is not sent 9.. without 2..8.
    const h2 = holder([])
    fanOutRun(h2.host, [['at8', { ready: true, last: 8 }], ['at1', { ready: true, last: 1 }]], [ev(9), ev(10)], 0)
    expect(h2.seqsOf('at8')).toEqual([9, 10])
    expect(h2.sent.has('at1')).toBe(false)
  })

  it('gives each feed subscriber the events of a page past its position that match its filter, once, and moves every position to the page\'s end', () => {
    const page = [ev(1), { ...ev(2), workflow_id: 'other' }, ev(3)]
    const got: Record<string, number[][]> = { all: [], wf: [], late: [] }
    const saved: Record<string, number> = {}
    const sub = (name: string, seen: number, filter: FeedSubscriber['filter'] = {}): FeedSubscriber =>
      ({ filter, seen, send: (events) => got[name]!.push(events.map((e) => e.id)), save: (n) => { saved[name] = n } })
    const subs = [sub('all', 0), sub('wf', 0, { workflowIds: ['wf'] }), sub('late', 102)]
    deliverFeedPage(subs, page)
    expect(got).toEqual({ all: [[101, 102, 103]], wf: [[101, 103]], late: [[103]] })
    expect(saved).toEqual({ all: 103, wf: 103, late: 103 })
    // The same page again (a coalesced notification): nothing twice.
    deliverFeedPage(subs, page)
    expect(got.all).toHaveLength(1)
  })

  it('replays a feed stream: pages of its filtered history, then ready at the tenant\'s last id and caught_up; 1013 when the read fails', async () => {
    const h = holder([])
    const records = new Map<string, FeedStreamRecord>([['f', { ready: false, filter: {}, seen: 0 }]])
    const host = { ...h.host, record: (s: string) => records.get(s) ?? null, save: (s: string, rec: FeedStreamRecord) => { records.set(s, rec) } }
    await replayFeed(host, 'f', 100, async () => 110, async (after) => (after < 103 ? [ev(2), ev(3)] : []))
    expect(h.sent.get('f')).toEqual([{ type: 'batch', events: [ev(2), ev(3)] }, { type: 'caught_up', position: 103 }])
    expect(records.get('f')).toEqual({ ready: true, filter: {}, seen: 110 })
    await expect(replayFeed(host, 'g', 0, async () => { throw new Error('libSQL down') }, async () => [])).rejects.toThrow('libSQL down')
    expect(h.closes.get('g')).toBe(1013)
  })
})
