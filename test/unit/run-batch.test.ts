/**
 * Group commits over real libSQL: a batch of any size is written with statements of a few row
 * counts (padded with rows that match nothing), so the write connection keeps a few statements
 * prepared, not one per group size; the padding writes nothing.
 */
import { rmSync } from 'node:fs'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { getTableColumns } from 'drizzle-orm'
import { copyRunRow, schema, type RunRow, type Store } from '../../src/db/store.ts'
import { CREATED, migratedStore, queuedRun, rawDb } from '../helpers/store.ts'

describe('copyRunRow', () => {
  it('copies every column of a run row, each to its own field', () => {
    // A distinct value per column: a field copied from the wrong column shows.
    const row = Object.fromEntries(Object.keys(getTableColumns(schema.runs)).map((k, i) => [k, `${k}:${i}`])) as unknown as RunRow
    const copy = copyRunRow(row)
    expect(copy).toEqual(row)
    expect(copy).not.toBe(row)
    expect(Object.keys(copy).sort()).toEqual(Object.keys(row).sort())
  })
})

describe('run batches', () => {
  let dir: string
  let store: Store
  const texts = new Set<string>()
  beforeEach(async () => {
    ;({ dir, store } = await migratedStore('run-batch'))
    // Every SQL text a write batch sends (what a write connection would keep prepared).
    const client = rawDb(store).$client
    const batch = client.batch.bind(client)
    client.batch = ((stmts: Array<{ sql: string }>, mode?: string) => { if (mode === 'write') for (const s of stmts) texts.add(s.sql); return batch(stmts as never, mode as never) }) as typeof client.batch
  })
  afterEach(() => { texts.clear(); rmSync(dir, { recursive: true, force: true }) })

  it('creates and changes groups of 1 to 70 runs with statements of a few sizes, each run written once and nothing else', async () => {
    const now = Date.now()
    let made = 0
    const all: Array<Awaited<ReturnType<Store['runs']['getById']>>> = []
    for (let size = 1; size <= 70; size++) {
      const rows = Array.from({ length: size }, () => queuedRun(`r_${++made}`, now))
      const created = await store.runs.writeBatch(rows.map((r) => store.runs.prepareCreate(r, CREATED)))
      for (const c of created) all.push(c.value!.run)
    }
    expect(all.length).toBe(made)
    // One change of each run, in groups of 1 to 70 again.
    let at = 0
    for (let size = 1; at < all.length; size++) {
      const group = all.slice(at, at + size)
      at += size
      const results = await store.runs.writeBatch(group.map((r) => store.runs.prepareChange(r!, { progress: 0.5, message: `m ${r!.id}` }, [{ type: 'run.progress', data: { progress: 0.5 } }], now + 1)))
      for (const [i, r] of results.entries()) {
        expect(r.error).toBeUndefined()
        expect(r.value!.run.id).toBe(group[i]!.id)
        expect(r.value!.events.map((e) => e.seq)).toEqual([2])
      }
    }
    // Exactly the runs made, each with its two events, and its change applied.
    const db = rawDb(store).$client
    expect(Number((await db.execute('select count(*) from runs')).rows[0]![0])).toBe(made)
    expect(Number((await db.execute('select count(*) from events')).rows[0]![0])).toBe(2 * made)
    expect(Number((await db.execute("select count(*) from runs where last_seq = 2 and progress = 0.5 and message = 'm ' || id")).rows[0]![0])).toBe(made)
    // 70 group sizes, three statement kinds: a few texts each (the size classes up to 96: 1–8, 10, 12, 14, 16, 20 …), not 70.
    expect(texts.size).toBeLessThanOrEqual(3 * 24)
  })
})
