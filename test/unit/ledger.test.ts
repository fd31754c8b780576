import { createClient } from '@libsql/client'
import { drizzle } from 'drizzle-orm/libsql'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { RunEvent } from '../../src/core/domain.ts'
import { schema, SeqConflictError, Store } from '../../src/db/store.ts'
import { LocalHub } from '../../src/runtime/local/hub.ts'
import { LocalLedger } from '../../src/runtime/local/ledger.ts'

describe('LocalLedger group commit', () => {
  let dir: string
  let store: Store
  let ledger: LocalLedger
  let published: RunEvent[]
  let batches: number

  const row = (id: string) => ({
    id, tenantId: 't', workflowId: 'wf', status: 'queued', variables: {}, runtimeVariables: {}, tags: ['x'], connectorState: {}, outputKeys: [],
    lastSeq: 1, transientErrors: 0, polls: 0, createdAt: 1, updatedAt: 1,
  })

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'runrelay-ledger-'))
    store = new Store(drizzle(createClient({ url: `file:${join(dir, 'db')}` }), { schema }))
    await store.migrate()
    const writeBatch = store.writeBatch.bind(store)
    store.writeBatch = (w) => { batches++; return writeBatch(w) }
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
      expect(await store.getRunById(r.run.id)).toEqual(r.run)
      expect(await store.listRunEvents(r.run.id, 0, 10)).toEqual([created.find((c) => c.run.id === r.run.id)!.event, ...r.events])
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
    expect((await store.listRunEvents('a', 0, 10)).map((e) => e.data)).toEqual([{}, {}])
  })

  it('keeps two writes of one run in order, in separate batches', async () => {
    const { run } = await ledger.create(row('a'), { type: 'run.created', data: {} })
    const first = ledger.commit(run, {}, [{ type: 'run.progress', data: { n: 1 } }])
    const second = first.then((r) => ledger.commit(r.run, {}, [{ type: 'run.progress', data: { n: 2 } }]))
    await second
    expect((await store.listRunEvents('a', 0, 10)).map((e) => e.seq)).toEqual([1, 2, 3])
  })
})
