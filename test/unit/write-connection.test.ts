// The local runtimes' write connection (src/runtime/local/write-connection.ts) over a real libSQL
// file: the store's group commits keep the client's semantics (atomic, visible to the pool's
// readers, a lost seq race refused) while their statements stay prepared.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createClient, type Client } from '@libsql/client'
import { drizzle } from 'drizzle-orm/libsql'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { RunEvent } from '../../src/core/domain.ts'
import { schema, SeqConflictError, Store } from '../../src/db/store.ts'
import { embeddedFilePath, withWriteConnection } from '../../src/runtime/local/write-connection.ts'
import { LocalLedger } from '../../src/runtime/local/ledger.ts'

const row = (id: string) => ({
  id, tenantId: 't', workflowId: 'wf', status: 'queued' as const, variables: {}, runtimeVariables: {}, tags: ['x'], connectorState: {}, outputKeys: [],
  lastSeq: 1, transientErrors: 0, polls: 0, createdAt: 1, updatedAt: 1,
})

describe('write connection', () => {
  let dir: string
  let client: Client
  let store: Store
  let published: RunEvent[]
  let ledger: LocalLedger
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'runrelay-wc-'))
    const file = join(dir, 'runrelay.db')
    client = createClient({ url: `file:${file}`, timeout: 5_000 })
    await client.execute('PRAGMA journal_mode = WAL')
    withWriteConnection(client, file, 5_000)
    store = new Store(drizzle(client, { schema }))
    await store.migrate()
    published = []
    ledger = new LocalLedger(store, { publish: (_t, evs) => { published.push(...evs) } }, () => 1_000)
  })
  afterEach(() => { client.close(); rmSync(dir, { recursive: true, force: true }) })

  it('commits the ledger\'s writes, readable through the pool at once, and refuses a second writer of the same seq', async () => {
    const { run } = await ledger.create(row('r1'), { type: 'run.created', data: {} })
    const next = await ledger.commit(run, { status: 'running' }, [{ type: 'run.status_changed', data: { from: 'queued', to: 'running' } }, { type: 'run.progress', data: { p: 0.5 } }])
    expect(next.events.map((e) => [e.seq, e.id])).toEqual([[2, 2], [3, 3]])
    expect((await store.runs.events('r1', 0, 10)).map((e) => e.type)).toEqual(['run.created', 'run.status_changed', 'run.progress'])
    expect((await store.runs.getById('r1'))).toMatchObject({ status: 'running', lastSeq: 3 })
    // A writer that read the run before that commit loses: nothing of its write lands.
    await expect(store.runs.applyChange(run, {}, [{ type: 'run.output', data: { late: true } }], 2_000)).rejects.toBeInstanceOf(SeqConflictError)
    expect((await store.runs.events('r1', 0, 10)).map((e) => e.seq)).toEqual([1, 2, 3])
    expect(published.map((e) => e.seq)).toEqual([1, 2, 3])
  })

  it('rolls a failing batch back whole, and the connection keeps working', async () => {
    const stmt = (key: string) => ({ sql: 'insert into settings (key, value, updated_at) values (?, ?, ?) returning key', args: [key, 'v', 1] })
    await expect(client.batch([stmt('a'), stmt('b'), stmt('a')], 'write')).rejects.toThrow(/UNIQUE constraint failed/)
    expect((await client.execute('select count(*) as n from settings where key in (\'a\', \'b\')')).rows[0]!.n).toBe(0)
    const ok = await client.batch([stmt('a'), stmt('b')], 'write') as unknown as Array<{ rows: unknown[][] }>
    expect(ok.map((r) => r.rows)).toEqual([[['a']], [['b']]])
  })

  it('applies only to a plain embedded file', () => {
    expect(embeddedFilePath(undefined, './data/')).toBe('./data/runrelay.db')
    expect(embeddedFilePath('file:/var/lib/rr.db', 'x')).toBe('/var/lib/rr.db')
    expect(embeddedFilePath('file:rel/rr.db', 'x')).toBe('rel/rr.db')
    for (const url of ['file::memory:', 'file:///abs.db', 'file:rr.db?mode=ro', 'libsql://db.turso.io', 'http://127.0.0.1:8080']) expect(embeddedFilePath(url, 'x')).toBeUndefined()
  })
})
