/**
 * Runs inside workerd (see vitest.workers.config.ts). Proves the Workers test
 * path end to end:
 *   - @libsql/client/web + drizzle-orm write and read through the Node-side
 *     libSQL HTTP test server over a plain loopback fetch;
 *   - a Durable Object reaches the same server from inside the object;
 *   - DO alarms can be driven with runDurableObjectAlarm;
 *   - WebSocket upgrades reach the DO (hibernation API) via SELF and stub.fetch;
 *   - the outage switch is reachable from workerd (POST /__test/failing).
 */
import { env, runDurableObjectAlarm, runInDurableObject, SELF } from 'cloudflare:test'
import { createClient, LibsqlError } from '@libsql/client/web'
import { eq, sql } from 'drizzle-orm'
import { drizzle } from 'drizzle-orm/libsql/web'
import { blob, integer, real, sqliteTable, text } from 'drizzle-orm/sqlite-core'
import { afterAll, describe, expect, inject, it } from 'vitest'
import type { HarnessObject } from './harness-worker.ts'

const client = createClient({ url: env.LIBSQL_URL, authToken: env.LIBSQL_AUTH_TOKEN })
afterAll(() => client.close())

const setFailing = async (on: boolean) => {
  const res = await fetch(`${env.LIBSQL_URL}/__test/failing?on=${on ? 1 : 0}`, { method: 'POST' })
  expect(res.status).toBe(200)
}

describe('libSQL over HTTP from workerd', () => {
  it('gets its own server URL from the binding', () => {
    expect(navigator.userAgent).toBe('Cloudflare-Workers') // really inside workerd
    expect(env.LIBSQL_URL).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
    expect(inject('libsqlAuthToken')).toBe(env.LIBSQL_AUTH_TOKEN)
  })

  it('round-trips values with @libsql/client/web', async () => {
    await client.execute('CREATE TABLE IF NOT EXISTS w_vals (id INTEGER PRIMARY KEY, i INTEGER, f REAL, t TEXT, b BLOB, n TEXT)')
    const ins = await client.execute({
      sql: 'INSERT INTO w_vals (i, f, t, b, n) VALUES (?, ?, ?, ?, ?)',
      args: [42, 0.5, 'wörkerd', new Uint8Array([9, 8, 7]), null],
    })
    expect(ins.rowsAffected).toBe(1)
    const rs = await client.execute({ sql: 'SELECT i, f, t, b, n FROM w_vals WHERE id = ?', args: [ins.lastInsertRowid!] })
    const row = rs.rows[0]!
    expect([row.i, row.f, row.t, row.n]).toEqual([42, 0.5, 'wörkerd', null])
    expect(new Uint8Array(row.b as ArrayBuffer)).toEqual(new Uint8Array([9, 8, 7]))
    expect(rs.columnTypes).toEqual(['INTEGER', 'REAL', 'TEXT', 'BLOB', 'TEXT'])
  })

  it('runs an interactive transaction and a write batch', async () => {
    await client.execute('CREATE TABLE IF NOT EXISTS w_tx (v INTEGER)')
    const tx = await client.transaction('write')
    await tx.execute('INSERT INTO w_tx VALUES (1)')
    await tx.rollback()
    const tx2 = await client.transaction('write')
    await tx2.execute('INSERT INTO w_tx VALUES (2)')
    await tx2.commit()
    await expect(client.batch(['INSERT INTO w_tx VALUES (3)', 'INSERT INTO nope VALUES (1)'], 'write')).rejects.toBeInstanceOf(LibsqlError)
    expect((await client.execute('SELECT v FROM w_tx')).rows.map((r) => r.v)).toEqual([2])
  })

  it('writes and reads with drizzle-orm', async () => {
    const events = sqliteTable('w_events', {
      id: integer('id').primaryKey({ autoIncrement: true }),
      runId: text('run_id').notNull(),
      seq: integer('seq').notNull(),
      weight: real('weight'),
      payload: blob('payload', { mode: 'json' }).$type<{ kind: string }>(),
    })
    const db = drizzle(client)
    await db.run(sql`CREATE TABLE IF NOT EXISTS w_events (
      id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, seq INTEGER NOT NULL, weight REAL, payload BLOB)`)
    const [first] = await db.insert(events).values({ runId: 'r1', seq: 1, weight: 1.25, payload: { kind: 'started' } }).returning()
    expect(first).toMatchObject({ runId: 'r1', seq: 1, weight: 1.25, payload: { kind: 'started' } })
    await db.transaction(async (tx) => {
      await tx.insert(events).values({ runId: 'r1', seq: 2, payload: { kind: 'finished' } })
    })
    const rows = await db.select({ seq: events.seq, kind: sql<string>`json_extract(${events.payload}, '$.kind')` }).from(events).where(eq(events.runId, 'r1')).orderBy(events.seq)
    expect(rows).toEqual([
      { seq: 1, kind: 'started' },
      { seq: 2, kind: 'finished' },
    ])
  })

  it('sees the outage switch and recovers', async () => {
    await setFailing(true)
    try {
      const err = await client.execute('SELECT 1').catch((e: unknown) => e)
      expect(err).toBeInstanceOf(LibsqlError)
      expect((err as LibsqlError).code).toBe('SERVER_ERROR')
    } finally {
      await setFailing(false)
    }
    expect((await client.execute('SELECT 1 AS one')).rows[0]!.one).toBe(1)
  })

  it('has really been talking to the Node-side server', async () => {
    const stats = (await (await fetch(`${env.LIBSQL_URL}/__test/stats`)).json()) as { requests: number; failing: boolean }
    expect(stats.failing).toBe(false)
    expect(stats.requests).toBeGreaterThan(5)
  })

  it('rejects a wrong auth token', async () => {
    const bad = createClient({ url: env.LIBSQL_URL, authToken: 'wrong' })
    await expect(bad.execute('SELECT 1')).rejects.toMatchObject({ code: 'UNAUTHORIZED' })
    bad.close()
  })
})

describe('Durable Object plumbing', () => {
  it('reaches libSQL from inside the Durable Object', async () => {
    const stub = env.HARNESS.get(env.HARNESS.idFromName('db'))
    expect(await stub.queryLibsql("SELECT 'from-do' AS s")).toEqual([['from-do']])
    const viaRun = await runInDurableObject(stub, (instance: HarnessObject) => instance.queryLibsql('SELECT 40 + 2'))
    expect(viaRun).toEqual([[42]])
  })

  it('runs alarms on demand', async () => {
    const stub = env.HARNESS.get(env.HARNESS.idFromName('alarms'))
    await stub.scheduleAlarm(60_000)
    const scheduled = await runInDurableObject(stub, (_i: HarnessObject, state) => state.storage.getAlarm())
    expect(scheduled).toBeGreaterThan(Date.now())
    expect(await runDurableObjectAlarm(stub)).toBe(true)
    expect(await runDurableObjectAlarm(stub)).toBe(false) // nothing scheduled any more
    const res = await stub.fetch('http://do/alarms')
    expect(await res.json()).toEqual({ alarms: 1 })
  })

  it('upgrades a WebSocket through the worker to the DO and exchanges messages', async () => {
    const res = await SELF.fetch('http://harness/do/room-1/ws', { headers: { Upgrade: 'websocket' } })
    expect(res.status).toBe(101)
    const ws = res.webSocket!
    ws.accept()
    const received: string[] = []
    const next = () =>
      new Promise<string>((resolve) => {
        ws.addEventListener('message', (e) => resolve(String(e.data)), { once: true })
      })
    let msg = next()
    ws.send('ping')
    received.push(await msg)
    msg = next()
    ws.send('hello')
    received.push(await msg)
    expect(received).toEqual(['pong', 'echo:hello'])

    // an alarm on the same object broadcasts to the hibernatable socket
    const stub = env.HARNESS.get(env.HARNESS.idFromName('room-1'))
    await stub.scheduleAlarm(60_000)
    msg = next()
    expect(await runDurableObjectAlarm(stub)).toBe(true)
    expect(JSON.parse(await msg)).toEqual({ alarm: 1 })
    ws.close(1000, 'done')
  })
})
