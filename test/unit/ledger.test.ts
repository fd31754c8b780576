import { rmSync } from 'node:fs'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { RunEvent } from '../../src/core/domain.ts'
import { SeqConflictError, Store } from '../../src/db/store.ts'
import { LocalHub } from '../../src/runtime/local/hub.ts'
import { eq } from 'drizzle-orm'
import { runs } from '../../src/db/schema.ts'
import { LocalLedger, MAX_UNSTORED_MS } from '../../src/runtime/local/ledger.ts'
import { migratedStore, rawDb } from '../helpers/store.ts'

describe('LocalLedger group commit', () => {
  let dir: string
  let store: Store
  let ledger: LocalLedger
  let published: RunEvent[]
  let batches: number

  const row = (id: string) => ({
    id, tenantId: 't', workflowId: 'wf', status: 'queued' as const, variables: {}, runtimeVariables: {}, tags: ['x'], connectorState: {}, outputKeys: [],
    lastSeq: 1, transientErrors: 0, polls: 0, createdAt: 1, updatedAt: 1,
  })

  beforeEach(async () => {
    ;({ dir, store } = await migratedStore('ledger'))
    const writeBatch = store.runs.writeBatch.bind(store.runs)
    store.runs.writeBatch = (w) => { batches++; return writeBatch(w) }
    const hub = new LocalHub()
    published = []
    hub.publish = (_t, events) => { published.push(...events) }
    ledger = new LocalLedger(store, hub, () => 1000)
    batches = 0
  })
  afterEach(() => rmSync(dir, { recursive: true, force: true }))

  it('commits concurrent writes of different runs in one batch, publishing in id order with per-run seqs', async () => {
    const created = await Promise.all(['a', 'b', 'c'].map((id) => ledger.create(row(id), { type: 'run.created', data: {} })))
    expect(batches).toBe(1)
    const results = await Promise.all(created.map(({ run }) => ledger.commit(run, { progress: 0.5 }, [
      { type: 'run.progress', data: { progress: 0.5 } },
      { type: 'run.status_changed', data: { from: 'queued', to: 'running' } },
    ])))
    expect(batches).toBe(2)
    for (const r of results) {
      expect(r.run).toMatchObject({ lastSeq: 3, progress: 0.5, updatedAt: 1000 })
      expect(r.events.map((e) => [e.seq, e.status])).toEqual([[2, 'queued'], [3, 'running']])
      expect(await store.runs.getById(r.run.id)).toEqual(r.run)
      expect(await store.runs.events(r.run.id, 0, 10)).toEqual([created.find((c) => c.run.id === r.run.id)!.event, ...r.events])
    }
    const ids = published.map((e) => e.id)
    expect(ids).toEqual([...ids].sort((x, y) => x - y))
    expect(published).toHaveLength(9)
  })

  it('fails only the write that lost a seq race; the others in its group are written', async () => {
    const [{ run: a }, { run: b }] = await Promise.all(['a', 'b'].map((id) => ledger.create(row(id), { type: 'run.created', data: {} })))
    await ledger.commit(a!, {}, [{ type: 'run.progress', data: {} }])
    published = []
    const [stale, fresh] = await Promise.allSettled([
      ledger.commit(a!, {}, [{ type: 'run.progress', data: { stale: true } }]),
      ledger.commit(b!, {}, [{ type: 'run.progress', data: { ok: true } }]),
    ])
    expect(stale.status === 'rejected' && stale.reason).toBeInstanceOf(SeqConflictError)
    expect(fresh.status).toBe('fulfilled')
    expect(published.map((e) => [e.run_id, e.seq])).toEqual([['b', 2]])
    expect((await store.runs.events('a', 0, 10)).map((e) => e.data)).toEqual([{}, {}])
  })

  it('keeps two writes of one run in order, in separate batches', async () => {
    const { run } = await ledger.create(row('a'), { type: 'run.created', data: {} })
    const first = ledger.commit(run, {}, [{ type: 'run.progress', data: { n: 1 } }])
    const second = first.then((r) => ledger.commit(r.run, {}, [{ type: 'run.progress', data: { n: 2 } }]))
    await second
    expect((await store.runs.events('a', 0, 10)).map((e) => e.seq)).toEqual([1, 2, 3])
  })

  it('applies the different patches of one group (columns, JSON, null) as written, failing only the stale write', async () => {
    const created = await Promise.all(['a', 'b', 'c', 'd'].map((id) => ledger.create(row(id), { type: 'run.created', data: {} })))
    const [a, b, c, d] = created.map((r) => r.run)
    await ledger.commit(d!, {}, [{ type: 'run.progress', data: {} }])
    batches = 0
    const results = await Promise.allSettled([
      ledger.commit(a!, { progress: 0.25, message: 'half' }, [{ type: 'run.progress', data: { p: 1 } }]),
      ledger.commit(b!, { result: { x: [1, 2] }, tags: ['y', 'z'], message: null }, [{ type: 'run.output', data: { k: 'v' } }, { type: 'run.progress', data: { p: 2 } }]),
      ledger.commit(c!, { progress: 0.75, message: 'most' }, [{ type: 'run.status_changed', data: { from: 'queued', to: 'running' } }]),
      ledger.commit(d!, { progress: 0.9, message: 'stale' }, [{ type: 'run.progress', data: { stale: true } }]),
    ])
    const [ra, rb, rc, rd] = results
    expect(rd.status === 'rejected' && rd.reason).toBeInstanceOf(SeqConflictError)
    for (const r of [ra, rb, rc]) {
      expect(r.status).toBe('fulfilled')
      const v = (r as PromiseFulfilledResult<Awaited<ReturnType<LocalLedger['commit']>>>).value
      expect(await store.runs.getById(v.run.id)).toEqual(v.run)
      expect(await store.runs.events(v.run.id, 1, 10)).toEqual(v.events)
    }
    const vb = (rb as PromiseFulfilledResult<Awaited<ReturnType<LocalLedger['commit']>>>).value
    expect(vb.run).toMatchObject({ lastSeq: 3, result: { x: [1, 2] }, tags: ['y', 'z'], message: null, progress: null, updatedAt: 1000 })
    expect(vb.events.map((e) => [e.seq, e.tags])).toEqual([[2, ['y', 'z']], [3, ['y', 'z']]])
    const vc = (rc as PromiseFulfilledResult<Awaited<ReturnType<LocalLedger['commit']>>>).value
    expect(vc.run).toMatchObject({ lastSeq: 2, progress: 0.75, message: 'most', status: 'queued' })
    expect(await store.runs.getById('d')).toMatchObject({ lastSeq: 2, progress: null, message: null })
    expect((await store.runs.events('d', 0, 10)).map((e) => e.data)).toEqual([{}, {}])
    const ids = published.filter((e) => e.run_id !== 'd').map((e) => e.id)
    expect(ids).toEqual([...ids].sort((x, y) => x - y))
  })

  it('writes a large group of the same patch shape with per-run seqs and no gaps', async () => {
    const ids = Array.from({ length: 300 }, (_, i) => `r${i}`)
    let runs = (await Promise.all(ids.map((id) => ledger.create(row(id), { type: 'run.created', data: {} })))).map((r) => r.run)
    for (let round = 0; round < 3; round++) {
      runs = (await Promise.all(runs.map((r) => ledger.commit(r, { polls: round + 1 }, [{ type: 'run.progress', data: { round } }])))).map((r) => r.run)
    }
    for (const r of runs) expect(r).toMatchObject({ lastSeq: 4, polls: 3 })
    for (const id of ['r0', 'r150', 'r299']) {
      expect(await store.runs.getById(id)).toMatchObject({ lastSeq: 4, polls: 3 })
      expect((await store.runs.events(id, 0, 10)).map((e) => e.seq)).toEqual([1, 2, 3, 4])
    }
  })

  it('a create goes in the next group, ahead of the watchers\' writes queued before it (the API does not wait behind them)', async () => {
    const ids = Array.from({ length: 600 }, (_, i) => `w${i}`)
    const runs = (await Promise.all(ids.map((id) => ledger.create(row(id), { type: 'run.created', data: {} })))).map((r) => r.run)
    batches = 0
    const done: string[] = []
    // 600 polls' writes queued (three groups of at most 256), then a trigger's create.
    const writes = runs.map((r) => ledger.commit(r, { polls: 1 }, [{ type: 'run.progress', data: {} }]).then(() => { done.push(r.id) }))
    const created = ledger.create(row('api'), { type: 'run.created', data: {} }).then((c) => { done.push('api'); return c })
    await Promise.all([...writes, created])
    expect(batches).toBe(3)
    // Committed (and answered) with the first group, not after all 600.
    expect(done.indexOf('api')).toBeLessThan(256)
    expect((await created).run.lastSeq).toBe(1)
    // Feed order is still commit order: published ids ascend.
    const pub = published.map((e) => e.id)
    expect(pub).toEqual([...pub].sort((x, y) => x - y))
  })

  it('keeps the last row of every held run, however many are held: a tick never reads its run back (past 1,024 runs too)', async () => {
    const ids = Array.from({ length: 1_300 }, (_, i) => `h${i}`)
    for (const id of ids) ledger.hold(id, 1)
    const created = await Promise.all(ids.map((id) => ledger.create({ ...row(id), leaseToken: 1 }, { type: 'run.created', data: {} })))
    let reads = 0
    const getRunById = store.runs.getById.bind(store.runs)
    store.runs.getById = (id) => { reads++; return getRunById(id) }
    // Two "ticks" of each run: read, then write from the row read.
    for (let tick = 0; tick < 2; tick++) {
      const rows = await Promise.all(created.map(({ run }) => ledger.getRun(run.id)))
      await Promise.all(rows.map((r, i) => ledger.commit(r!, { progress: tick / 2 }, [{ type: 'run.progress', data: { i, tick } }])))
    }
    expect(reads).toBe(0)
    // Released runs leave the cache: their next read is the store's.
    ledger.release('h0')
    expect((await ledger.getRun('h0'))?.lastSeq).toBe(3)
    expect(reads).toBe(1)
  }, 30_000)
  it('rejects alone the write of a run whose fence failed (taken over): the others of its group commit and publish', async () => {
    for (const id of ['a', 'b', 'c']) ledger.hold(id, 1)
    const created = await Promise.all(['a', 'b', 'c'].map((id) => ledger.create({ ...row(id), leaseToken: 1 }, { type: 'run.created', data: {} })))
    // Another process claimed b meanwhile: its row carries a new fencing token.
    await rawDb(store).update(runs).set({ leaseToken: 2 }).where(eq(runs.id, 'b'))
    published = []
    batches = 0
    const outcomes = await Promise.allSettled(created.map(({ run }) => ledger.commit(run, { progress: 0.5 }, [{ type: 'run.progress', data: { id: run.id } }])))
    expect(batches, 'one group').toBe(1)
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled'])
    expect((outcomes[1] as PromiseRejectedResult).reason).toBeInstanceOf(SeqConflictError)
    expect(published.map((e) => e.run_id)).toEqual(['a', 'c'])
    expect((await store.runs.getById('b'))).toMatchObject({ lastSeq: 1, progress: null })
    expect(await store.runs.events('b', 1, 10)).toEqual([])
    expect((await store.runs.getById('a'))).toMatchObject({ lastSeq: 2, progress: 0.5 })
  })

  it('keeps a poll that changed nothing of a held run in memory (polls, next tick) instead of writing it; anything else is written', async () => {
    ledger.hold('a', 1)
    const { run } = await ledger.create({ ...row('a'), leaseToken: 1, connectorState: { cursor: 3 }, lastRaw: { status: 'running' } }, { type: 'run.created', data: {} })
    const stored = await store.runs.getById('a')
    batches = 0
    published = []
    // Same state and raw answer (new objects, same content), only the bookkeeping moves: nothing is written or published.
    const kept = await ledger.commit(run, { polls: 1, nextTickAt: 5_000, transientErrors: 0, connectorState: { cursor: 3 }, lastRaw: { status: 'running' } }, [])
    expect(batches).toBe(0)
    expect(published).toEqual([])
    expect(ledger.skipped).toBe(1)
    expect(kept.run).toMatchObject({ polls: 1, nextTickAt: 5_000, lastSeq: 1, updatedAt: run.updatedAt })
    expect(await store.runs.getById('a'), 'the stored row keeps the last change').toEqual(stored)
    // The next tick reads the kept row, not the store's (and again after a tick that wrote nothing).
    expect(await ledger.getRun('a')).toMatchObject({ polls: 1, nextTickAt: 5_000 })
    expect(await ledger.getRun('a')).toMatchObject({ polls: 1, nextTickAt: 5_000 })
    // A changed raw answer is stored, with the bookkeeping.
    const changed = await ledger.commit(kept.run, { polls: 2, nextTickAt: 6_000, lastRaw: { status: 'running', n: 2 } }, [])
    expect(batches).toBe(1)
    expect(await store.runs.getById('a')).toEqual(changed.run)
    expect(changed.run).toMatchObject({ polls: 2, nextTickAt: 6_000, lastRaw: { status: 'running', n: 2 }, updatedAt: 1000 })
    // A run not held here is always written.
    const { run: other } = await ledger.create(row('b'), { type: 'run.created', data: {} })
    batches = 0
    await ledger.commit(other, { polls: 1, nextTickAt: 5_000 }, [])
    expect(batches).toBe(1)
    // And a held run's row is written at least every MAX_UNSTORED_MS.
    ledger.hold('c', 1)
    const { run: old } = await ledger.create({ ...row('c'), leaseToken: 1, updatedAt: 1000 - MAX_UNSTORED_MS }, { type: 'run.created', data: {} })
    batches = 0
    await ledger.commit(old, { polls: 1, nextTickAt: 5_000 }, [])
    expect(batches).toBe(1)
    expect(await store.runs.getById('c')).toMatchObject({ polls: 1, nextTickAt: 5_000, updatedAt: 1000 })
  })
})

