/**
 * An Idempotency-Key maps to one run for 24 hours, whatever happens between the claim and the
 * answer: a retry at 0 s, after the old 60 s window and after 10 minutes replays the first run;
 * a request that died before creating anything is taken over with the same run id; one that
 * created its run but lost its answer (the 500s of issue 22) is answered with that run;
 * concurrent requests make one run. Real runtime over a real libSQL file; elapsed time is
 * simulated by ageing the key's row (the only clock the key reads).
 */
import { createClient } from '@libsql/client'
import { drizzle } from 'drizzle-orm/libsql'
import { sql } from 'drizzle-orm'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/config.ts'
import { newEncryptionKey, SecretBox } from '../../src/core/crypto.ts'
import { schema, Store } from '../../src/db/store.ts'
import { isStoreUnavailable } from '../../src/db/store-errors.ts'
import { createLocalRuntime } from '../../src/runtime/local/runtime.ts'
import { rawDb } from '../helpers/store.ts'

const ROOT = 'rr_idem_root_key_0123456789abcdef'

describe('Idempotency-Key: one run per key through faults and delays', () => {
  let dir: string
  let runtime: Awaited<ReturnType<typeof createLocalRuntime>>
  let store: Store
  let key: string
  let workflowId: string
  let tenantId: string

  const req = async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}, as = key) => {
    const res = await runtime.app.request(path, { method, headers: { authorization: `Bearer ${as}`, 'content-type': 'application/json', ...headers }, body: body === undefined ? undefined : JSON.stringify(body) })
    const text = await res.text()
    return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : null }
  }
  const trigger = (idem: string) => req('POST', `/v1/workflows/${workflowId}/runs`, { variables: {} }, { 'idempotency-key': idem })
  /** Move a key's row back in time by `ms` (what the key sees of elapsed time). */
  const age = (idem: string, ms: number) => rawDb(store).run(sql`update idempotency_keys set created_at = created_at - ${ms} where key = ${idem}`)
  const runsOfWorkflow = async () => (await req('GET', `/v1/runs?workflow_id=${workflowId}&limit=200`)).body.items as Array<{ id: string }>

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'runrelay-idem-'))
    store = new Store(drizzle(createClient({ url: `file:${join(dir, 'db')}` }), { schema }))
    runtime = await createLocalRuntime({
      store, secrets: await SecretBox.fromKey(newEncryptionKey()), config: parseConfig({ RUNRELAY_ROOT_KEY: ROOT, RUNRELAY_RATE_LIMIT_PER_MINUTE: '0' }),
      upgradeWebSocket: (() => () => new Response(null, { status: 426 })) as any,
    })
    await runtime.resume()
    const t = await req('POST', '/v1/tenants', { name: 'idem' }, {}, ROOT)
    key = t.body.key.key
    tenantId = t.body.tenant.id
    const conn = await req('POST', '/v1/connections', { name: 'demo', provider: 'demo' })
    const wf = await req('POST', '/v1/workflows', { name: 'wf', connection_id: conn.body.id, upstream_workflow_id: 'demo' })
    workflowId = wf.body.id
  })
  afterAll(async () => {
    await runtime?.shutdown()
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  it('a retry after 0 s, 61 s and 10 min replays the first run (202, Idempotent-Replayed); after 24 h the key is new', async () => {
    const first = await trigger('k-delays')
    expect(first.status).toBe(202)
    for (const ms of [0, 61_000, 10 * 60_000]) {
      await age('k-delays', ms)
      const again = await trigger('k-delays')
      expect(again.status, `after ${ms} ms`).toBe(202)
      expect(again.body.id).toBe(first.body.id)
      expect(again.headers.get('idempotent-replayed')).toBe('true')
    }
    await age('k-delays', 25 * 3_600_000)
    const later = await trigger('k-delays')
    expect(later.status).toBe(202)
    expect(later.body.id).not.toBe(first.body.id)
  })

  it('a request that created its run but lost its answer (the old 500) is answered with that run at any delay', async () => {
    const first = await trigger('k-lost-answer')
    // As if the answer's write had failed after the run committed.
    await rawDb(store).run(sql`update idempotency_keys set response_status = null, response_body = null where key = 'k-lost-answer'`)
    for (const ms of [0, 61_000, 10 * 60_000]) {
      await age('k-lost-answer', ms)
      const again = await trigger('k-lost-answer')
      expect(again.status, `after ${ms} ms`).toBe(202)
      expect(again.body.id).toBe(first.body.id)
    }
    expect((await runsOfWorkflow()).filter((r) => r.id === first.body.id)).toHaveLength(1)
  })

  it('a store fault after the run committed answers 202 with the run; a fault before any write answers 503 + Retry-After, and the retry proceeds at once with the reserved id', async () => {
    const host = runtime.host
    const create = host.create.bind(host)
    const before = (await runsOfWorkflow()).length
    // The write commits, then its answer is lost (a connection reset on the way back).
    host.create = async (...a) => { await create(...a); throw Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNRESET' } }) }
    const committed = await trigger('k-fault-after')
    expect(committed.status).toBe(202)
    expect(committed.headers.get('idempotent-replayed')).toBe('true')
    // Nothing reaches the database.
    let reserved = ''
    host.create = async (row) => { reserved = row.id; throw Object.assign(new Error('Failed query: insert …'), { cause: Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNREFUSED' } }) }) }
    const failed = await trigger('k-fault-before')
    expect(failed.status).toBe(503)
    expect(failed.body.error.code).toBe('store_unavailable')
    expect(Number(failed.headers.get('retry-after'))).toBeGreaterThan(0)
    host.create = create
    const retried = await trigger('k-fault-before')
    expect(retried.status).toBe(202)
    expect(retried.body.id, 'the retry creates the id the first request reserved').toBe(reserved)
    expect((await trigger('k-fault-before')).body.id).toBe(reserved)
    expect((await runsOfWorkflow()).length).toBe(before + 2)
  })

  it('a claim whose request died before creating anything: 409 + Retry-After while it may be in flight, then taken over with the same id', async () => {
    // The claim row a dead request leaves (reserved id, no run, no answer), written as the store writes it.
    const body = await trigger('k-probe-hash')
    const hash = (await rawDb(store).all<{ request_hash: string }>(sql`select request_hash from idempotency_keys where key = 'k-probe-hash'`))[0]!.request_hash
    void body
    await store.idempotency.claim(tenantId, 'k-dead', hash, Date.now(), 24 * 3_600_000, 'run_reservedByDeadRequest01')
    const busy = await trigger('k-dead')
    expect(busy.status).toBe(409)
    expect(busy.body.error.code).toBe('idempotency_key_in_use')
    expect(Number(busy.headers.get('retry-after'))).toBeGreaterThan(0)
    await age('k-dead', 6_000)
    const taken = await trigger('k-dead')
    expect(taken.status).toBe(202)
    expect(taken.body.id).toBe('run_reservedByDeadRequest01')
    expect((await trigger('k-dead')).body.id).toBe('run_reservedByDeadRequest01')
  })

  it('concurrent requests with one key make one run; the others replay it or get a 409 a retry resolves', async () => {
    const answers = await Promise.all(Array.from({ length: 10 }, () => trigger('k-concurrent')))
    const ids = new Set(answers.filter((a) => a.status === 202).map((a) => a.body.id))
    expect(ids.size).toBe(1)
    for (const a of answers) expect([202, 409]).toContain(a.status)
    const retry = await trigger('k-concurrent')
    expect(retry.body.id).toBe([...ids][0])
  })

  it('store faults are classified in one place (libSQL/Hrana codes, network codes, timeouts, through drizzle\'s wrapper)', () => {
    const wrap = (cause: unknown) => Object.assign(new Error('Failed query: select 1 params: connection refused'), { cause })
    expect(isStoreUnavailable(wrap(Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNREFUSED' } })))).toBe(true)
    expect(isStoreUnavailable(wrap({ code: 'SERVER_ERROR', message: 'Server returned HTTP status 503' }))).toBe(true)
    expect(isStoreUnavailable(wrap({ code: 'SQLITE_BUSY', message: 'database is locked' }))).toBe(true)
    expect(isStoreUnavailable(wrap({ name: 'TimeoutError', message: 'The operation was aborted due to timeout' }))).toBe(true)
    expect(isStoreUnavailable(wrap({ code: 'SQLITE_CONSTRAINT_UNIQUE', message: 'UNIQUE constraint failed: runs.id' }))).toBe(false)
    expect(isStoreUnavailable(new Error('Failed query: insert … params: connection refused'))).toBe(false)
    expect(isStoreUnavailable(new TypeError('x is undefined'))).toBe(false)
  })
})
