/**
 * Proves that the development Hrana-over-HTTP server (scripts/libsql-http-server.ts)
 * is a faithful stand-in for sqld/Turso for `@libsql/client/web`, with the real
 * embedded libSQL engine underneath.
 */
import { createClient as createWebClient, LibsqlError, type Client } from '@libsql/client/web'
import { createClient as createFileClient } from '@libsql/client'
import { eq, sql } from 'drizzle-orm'
import { drizzle } from 'drizzle-orm/libsql'
import { blob, integer, real, sqliteTable, text } from 'drizzle-orm/sqlite-core'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { startLibsqlHttpServer, type LibsqlHttpServer } from '../../scripts/libsql-http-server.ts'

let server: LibsqlHttpServer
let client: Client

beforeAll(async () => {
  server = await startLibsqlHttpServer()
  client = createWebClient({ url: server.url })
})
afterAll(async () => {
  client?.close()
  await server?.close()
})

async function expectLibsqlError(p: Promise<unknown>, code: string): Promise<LibsqlError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(LibsqlError)
  expect((err as LibsqlError).code).toBe(code)
  return err as LibsqlError
}

describe('libsql http server with @libsql/client/web', () => {
  it('answers the version probes and refuses protobuf', async () => {
    expect((await fetch(`${server.url}/v2`)).status).toBe(200)
    expect((await fetch(`${server.url}/v3`)).status).toBe(200)
    expect((await fetch(`${server.url}/v3-protobuf`)).status).toBe(404)
  })

  it('creates a table and round-trips every value type', async () => {
    await client.execute(
      'CREATE TABLE vals (id INTEGER PRIMARY KEY, i INTEGER, f REAL, t TEXT, b BLOB, n TEXT)',
    )
    const big = 9223372036854775807n
    const ins = await client.execute({
      sql: 'INSERT INTO vals (i, f, t, b, n) VALUES (?, ?, ?, ?, ?)',
      args: [big, 1.5, 'héllo ✓ "q"', new Uint8Array([0, 1, 254, 255]), null],
    })
    expect(ins.rowsAffected).toBe(1)
    expect(ins.lastInsertRowid).toBe(1n)

    const named = await client.execute({
      sql: 'INSERT INTO vals (i, f, t) VALUES (:i, @f, $t)',
      args: { i: -42, f: 2, t: 'named' },
    })
    expect(named.lastInsertRowid).toBe(2n)

    // 2^63-1 does not fit a JS number, so read everything in intMode "bigint"
    const bigClient = createWebClient({ url: server.url, intMode: 'bigint' })
    try {
      const rs = await bigClient.execute('SELECT id, i, f, t, b, n, 1 + 1 AS two FROM vals ORDER BY id')
      expect(rs.columns).toEqual(['id', 'i', 'f', 't', 'b', 'n', 'two'])
      expect(rs.columnTypes).toEqual(['INTEGER', 'INTEGER', 'REAL', 'TEXT', 'BLOB', 'TEXT', ''])
      expect(rs.rowsAffected).toBe(0)
      expect(rs.rows).toHaveLength(2)
      const r1 = rs.rows[0]!
      expect(r1.id).toBe(1n)
      expect(r1.i).toBe(big)
      expect(r1.f).toBe(1.5)
      expect(r1.t).toBe('héllo ✓ "q"')
      expect(new Uint8Array(r1.b as ArrayBuffer)).toEqual(new Uint8Array([0, 1, 254, 255]))
      expect(r1.n).toBeNull()
      expect(r1.two).toBe(2n)
    } finally {
      bigClient.close()
    }

    // default intMode "number"
    const r2 = (await client.execute('SELECT i, f, typeof(i) AS ti, typeof(f) AS tf FROM vals WHERE id = 2')).rows[0]!
    expect(r2.i).toBe(-42)
    expect(r2.f).toBe(2) // a JS number is bound as REAL
    expect([r2.ti, r2.tf]).toEqual(['integer', 'real'])
  })

  it('maps SQLite errors to LibsqlError codes', async () => {
    await expectLibsqlError(client.execute('SELEC nonsense'), 'SQLITE_ERROR')
    await client.execute('CREATE TABLE uniq (k TEXT PRIMARY KEY)')
    await client.execute("INSERT INTO uniq VALUES ('a')")
    const err = await expectLibsqlError(client.execute("INSERT INTO uniq VALUES ('a')"), 'SQLITE_CONSTRAINT')
    expect(err.message).toMatch(/UNIQUE constraint failed/)
  })

  it('runs a write batch atomically and rolls it back on error', async () => {
    await client.execute('CREATE TABLE acct (name TEXT PRIMARY KEY, balance INTEGER NOT NULL)')
    const results = await client.batch(
      [
        { sql: 'INSERT INTO acct VALUES (?, ?)', args: ['alice', 100] },
        { sql: 'INSERT INTO acct VALUES (?, ?)', args: ['bob', 50] },
        'SELECT count(*) AS c FROM acct',
      ],
      'write',
    )
    expect(results.map((r) => r.rowsAffected)).toEqual([1, 1, 0])
    expect(results[2]!.rows[0]!.c).toBe(2)

    const before = server.openStreamCount()
    await expectLibsqlError(
      client.batch(
        [
          { sql: 'UPDATE acct SET balance = balance - 10 WHERE name = ?', args: ['alice'] },
          { sql: 'INSERT INTO acct VALUES (?, ?)', args: ['bob', 1] }, // duplicate key
          { sql: 'UPDATE acct SET balance = balance + 10 WHERE name = ?', args: ['bob'] },
        ],
        'write',
      ),
      'SQLITE_CONSTRAINT',
    )
    const rs = await client.execute('SELECT name, balance FROM acct ORDER BY name')
    expect(rs.rows.map((r) => [r.name, r.balance])).toEqual([
      ['alice', 100],
      ['bob', 50],
    ])
    // batches open and close their stream in one pipeline
    expect(server.openStreamCount()).toBe(before)
  })

  it('keeps an interactive transaction on one connection; commit publishes, rollback discards', async () => {
    await client.execute('CREATE TABLE tx (v INTEGER)')

    const tx = await client.transaction('write')
    await tx.execute({ sql: 'INSERT INTO tx VALUES (?)', args: [1] })
    const inside = await tx.execute('SELECT count(*) AS c FROM tx')
    expect(inside.rows[0]!.c).toBe(1)
    // another stream (another connection) does not see uncommitted rows (WAL snapshot)
    const outside = await client.execute('SELECT count(*) AS c FROM tx')
    expect(outside.rows[0]!.c).toBe(0)
    expect(server.openStreamCount()).toBeGreaterThanOrEqual(1)
    await tx.commit()
    expect((await client.execute('SELECT count(*) AS c FROM tx')).rows[0]!.c).toBe(1)

    const tx2 = await client.transaction('write')
    await tx2.batch([
      { sql: 'INSERT INTO tx VALUES (?)', args: [2] },
      { sql: 'INSERT INTO tx VALUES (?)', args: [3] },
    ])
    expect((await tx2.execute('SELECT count(*) AS c FROM tx')).rows[0]!.c).toBe(3)
    await tx2.rollback()
    expect((await client.execute('SELECT count(*) AS c FROM tx')).rows[0]!.c).toBe(1)
    expect(server.openStreamCount()).toBe(0)
  })

  it('queues a writer behind an open write transaction instead of failing', async () => {
    await client.execute('CREATE TABLE q (v INTEGER)')
    const tx = await client.transaction('write')
    await tx.execute('INSERT INTO q VALUES (1)')
    const blocked = client.execute('INSERT INTO q VALUES (2)')
    await new Promise((r) => setTimeout(r, 50))
    await tx.commit()
    await blocked
    expect((await client.execute('SELECT count(*) AS c FROM q')).rows[0]!.c).toBe(2)
  })

  it('runs executeMultiple (sequence) and migrate', async () => {
    await client.executeMultiple(`
      CREATE TABLE seq_a (x INTEGER);
      INSERT INTO seq_a VALUES (1);
      INSERT INTO seq_a VALUES (2);
    `)
    expect((await client.execute('SELECT sum(x) AS s FROM seq_a')).rows[0]!.s).toBe(3)
    await client.migrate(['CREATE TABLE mig (x INTEGER)', 'INSERT INTO mig VALUES (7)'])
    expect((await client.execute('SELECT x FROM mig')).rows[0]!.x).toBe(7)
  })

  it('writes go to the real database file (visible to an embedded file: client)', async () => {
    await client.execute('CREATE TABLE shared (v TEXT)')
    await client.execute("INSERT INTO shared VALUES ('from-http')")
    const local = createFileClient({ url: `file:${server.dbPath}` })
    try {
      const rs = await local.execute('SELECT v FROM shared')
      expect(rs.rows.map((r) => r.v)).toEqual(['from-http'])
    } finally {
      local.close()
    }
  })
})

describe('raw Hrana protocol details', () => {
  const post = async (path: string, body: unknown) => {
    const res = await fetch(`${server.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    })
    return { status: res.status, type: res.headers.get('content-type'), text: await res.text() }
  }

  it('supports v3 conditions (and/or/error/is_autocommit), get_autocommit, baton chaining and close', async () => {
    const stmt = (sql: string) => ({ sql, args: [], named_args: [], want_rows: true })
    const first = await post('/v3/pipeline', {
      baton: null,
      requests: [
        { type: 'get_autocommit' },
        {
          type: 'batch',
          batch: {
            steps: [
              { stmt: stmt('BEGIN') },
              { stmt: stmt('SELEC broken') },
              { condition: { type: 'and', conds: [{ type: 'ok', step: 0 }, { type: 'error', step: 1 }] }, stmt: stmt('SELECT 1') },
              { condition: { type: 'or', conds: [{ type: 'ok', step: 1 }, { type: 'is_autocommit' }] }, stmt: stmt('SELECT 2') },
              { condition: { type: 'not', cond: { type: 'is_autocommit' } }, stmt: stmt('SELECT 3') },
            ],
          },
        },
        { type: 'get_autocommit' },
      ],
    })
    expect(first.status).toBe(200)
    const body = JSON.parse(first.text)
    expect(typeof body.baton).toBe('string')
    expect(body.results[0]).toEqual({ type: 'ok', response: { type: 'get_autocommit', is_autocommit: true } })
    const batch = body.results[1].response.result
    expect(batch.step_results.map((r: unknown) => r !== null)).toEqual([true, false, true, false, true])
    expect(batch.step_errors[1]).toMatchObject({ code: 'SQLITE_ERROR' })
    expect(batch.step_results[4].rows).toEqual([[{ type: 'integer', value: '3' }]])
    expect(body.results[2].response.is_autocommit).toBe(false)

    // the same baton cannot be used twice; the fresh one can
    const next = await post('/v3/pipeline', { baton: body.baton, requests: [{ type: 'execute', stmt: stmt('ROLLBACK') }, { type: 'close' }] })
    expect(JSON.parse(next.text).baton).toBeNull()
    const replay = await post('/v3/pipeline', { baton: body.baton, requests: [{ type: 'close' }] })
    expect(replay.status).toBe(400)
    expect(replay.type).toBe('application/json')
    expect(JSON.parse(replay.text)).toMatchObject({ code: 'STREAM_EXPIRED' })
  })

  it('answers describe and the v3 cursor endpoint', async () => {
    const d = await post('/v3/pipeline', {
      baton: null,
      requests: [{ type: 'describe', sql: 'SELECT :a AS x, ?3' }, { type: 'close' }],
    })
    expect(JSON.parse(d.text).results[0].response.result).toEqual({
      params: [{ name: ':a' }, { name: null }, { name: '?3' }],
      cols: [
        { name: 'x', decltype: null },
        { name: '?3', decltype: null },
      ],
      is_explain: false,
      is_readonly: true,
    })
    const c = await post('/v3/cursor', {
      baton: null,
      batch: { steps: [{ stmt: { sql: "SELECT 'a' AS s UNION ALL SELECT 'b'" } }, { stmt: { sql: 'nope' } }] },
    })
    const lines = c.text.trim().split('\n').map((l) => JSON.parse(l))
    expect(lines.map((l) => l.type ?? 'head')).toEqual(['head', 'step_begin', 'row', 'row', 'step_end', 'step_error'])
  })
})

describe('auth and outage switch', () => {
  let authed: LibsqlHttpServer
  afterEach(() => server.setFailing(false))
  afterAll(async () => authed?.close())

  it('requires the bearer token when configured', async () => {
    authed = await startLibsqlHttpServer({ authToken: 's3cret' })
    const anon = createWebClient({ url: authed.url })
    const wrong = createWebClient({ url: authed.url, authToken: 'nope' })
    const good = createWebClient({ url: authed.url, authToken: 's3cret' })
    try {
      await expectLibsqlError(anon.execute('SELECT 1'), 'UNAUTHORIZED')
      await expectLibsqlError(wrong.execute('SELECT 1'), 'UNAUTHORIZED')
      expect((await good.execute('SELECT 1 AS one')).rows[0]!.one).toBe(1)
    } finally {
      anon.close()
      wrong.close()
      good.close()
    }
  })

  it('fails every request while failing and recovers afterwards', async () => {
    await client.execute('CREATE TABLE outage (v INTEGER)')
    const before = server.requestCount()
    server.setFailing(true)
    const err = await expectLibsqlError(client.execute('INSERT INTO outage VALUES (1)'), 'SERVER_ERROR')
    expect(err.message).toMatch(/503/)
    await expectLibsqlError(client.batch(['INSERT INTO outage VALUES (1)'], 'write'), 'SERVER_ERROR')
    await expect(client.transaction('write').then((t) => t.execute('SELECT 1'))).rejects.toThrow(/503/)
    expect(server.requestCount()).toBeGreaterThan(before)

    server.setFailing(false)
    await client.execute('INSERT INTO outage VALUES (2)')
    expect((await client.execute('SELECT v FROM outage')).rows.map((r) => r.v)).toEqual([2])
  })

  it('drops open transactions when the outage starts', async () => {
    await client.execute('CREATE TABLE outage_tx (v INTEGER)')
    const tx = await client.transaction('write')
    await tx.execute('INSERT INTO outage_tx VALUES (1)')
    server.setFailing(true)
    await expect(tx.commit()).rejects.toThrow()
    server.setFailing(false)
    // the write lock went away with the dropped stream, and the row was rolled back
    await client.execute('INSERT INTO outage_tx VALUES (2)')
    expect((await client.execute('SELECT v FROM outage_tx')).rows.map((r) => r.v)).toEqual([2])
  })
})

describe('stream expiry', () => {
  it('expires an idle stream, rolling back its transaction and releasing the write lock', async () => {
    const short = await startLibsqlHttpServer({ streamIdleTimeoutMs: 100 })
    const c = createWebClient({ url: short.url })
    try {
      await c.execute('CREATE TABLE idle (v INTEGER)')
      const tx = await c.transaction('write')
      await tx.execute('INSERT INTO idle VALUES (1)')
      expect(short.openStreamCount()).toBe(1)
      await new Promise((r) => setTimeout(r, 300))
      expect(short.openStreamCount()).toBe(0)
      await expect(tx.commit()).rejects.toThrow(/expired|baton/i)
      await c.execute('INSERT INTO idle VALUES (2)')
      expect((await c.execute('SELECT v FROM idle')).rows.map((r) => r.v)).toEqual([2])
    } finally {
      c.close()
      await short.close()
    }
  })
})

describe('drizzle-orm over the web client', () => {
  const runs = sqliteTable('drz_runs', {
    id: integer('id').primaryKey({ autoIncrement: true }),
    name: text('name').notNull(),
    score: real('score'),
    payload: blob('payload', { mode: 'buffer' }),
    createdAt: integer('created_at', { mode: 'timestamp_ms' }).notNull(),
  })

  it('inserts, selects, returns and runs transactions', async () => {
    const db = drizzle(client)
    await db.run(sql`CREATE TABLE drz_runs (
      id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, score REAL, payload BLOB, created_at INTEGER NOT NULL)`)
    const now = new Date(1_700_000_000_123)

    const inserted = await db
      .insert(runs)
      .values({ name: 'first', score: 0.25, payload: Buffer.from('hi'), createdAt: now })
      .returning()
    expect(inserted).toEqual([{ id: 1, name: 'first', score: 0.25, payload: Buffer.from('hi'), createdAt: now }])

    const res = await db.insert(runs).values({ name: 'second', createdAt: now })
    expect(res.rowsAffected).toBe(1)

    const rows = await db.select({ id: runs.id, name: runs.name }).from(runs).orderBy(runs.id)
    expect(rows).toEqual([
      { id: 1, name: 'first' },
      { id: 2, name: 'second' },
    ])

    const updated = await db.update(runs).set({ score: 1 }).where(eq(runs.name, 'second')).returning({ id: runs.id })
    expect(updated).toEqual([{ id: 2 }])

    await db.transaction(async (tx) => {
      await tx.insert(runs).values({ name: 'in-tx', createdAt: now })
      const seen = await tx.select().from(runs).where(eq(runs.name, 'in-tx'))
      expect(seen).toHaveLength(1)
    })
    await expect(
      db.transaction(async (tx) => {
        await tx.insert(runs).values({ name: 'rolled-back', createdAt: now })
        tx.rollback()
      }),
    ).rejects.toThrow(/Rollback/i)
    await expect(
      db.transaction(async (tx) => {
        await tx.insert(runs).values({ name: 'also-rolled-back', createdAt: now })
        throw new Error('boom')
      }),
    ).rejects.toThrow('boom')

    const names = (await db.select({ name: runs.name }).from(runs).orderBy(runs.id)).map((r) => r.name)
    expect(names).toEqual(['first', 'second', 'in-tx'])

    const batchResult = await db.batch([
      db.insert(runs).values({ name: 'b1', createdAt: now }).returning({ id: runs.id }),
      db.select({ c: sql<number>`count(*)` }).from(runs),
    ])
    expect(batchResult[0]).toEqual([{ id: 4 }])
    expect(batchResult[1]).toEqual([{ c: 4 }])
  })
})
