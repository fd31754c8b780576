import { createHmac } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Webhook } from 'standardwebhooks'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { newEncryptionKey, newId, SecretBox } from '../../src/core/crypto.ts'
import { createGuardedFetch } from '../../src/core/outbound.ts'
import type { Store } from '../../src/db/store.ts'
import { WebhookDispatcher } from '../../src/services/webhook-dispatcher.ts'
import { runBody } from '../../src/http/serialize.ts'
import { fakeClock, recordingHosts, seedWorkflow, tempDatabase } from '../helpers/jobs.ts'
import { demoTenant, sleep } from '../helpers/live.ts'
import { startTestServer, until, type TestServer } from '../helpers/server.ts'
import { rawDb } from '../helpers/store.ts'

interface Received { id: string; timestamp: string; signature: string; body: string; at: number; path: string }
type Answer = { status: number; headers?: Record<string, string> }

/** A webhook receiver on 127.0.0.1; each path answers from its own script (last answer repeats). */
async function startReceiver() {
  const got: Received[] = []
  const scripts = new Map<string, Answer[]>()
  const server: Server = createServer((req, res) => {
    let body = ''
    req.on('data', (c) => (body += c))
    req.on('end', () => {
      const path = req.url ?? '/'
      got.push({ id: String(req.headers['webhook-id']), timestamp: String(req.headers['webhook-timestamp']), signature: String(req.headers['webhook-signature']), body, at: Date.now(), path })
      const script = scripts.get(path) ?? [{ status: 200 }]
      const answer = script.length > 1 ? script.shift()! : script[0]!
      res.writeHead(answer.status, answer.headers ?? {})
      res.end('ok')
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return {
    url, got, script: (path: string, answers: Answer[]) => scripts.set(path, answers),
    at: (path: string) => got.filter((g) => g.path === path),
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()) }),
  }
}

const headersOf = (r: Received) => ({ 'webhook-id': r.id, 'webhook-timestamp': r.timestamp, 'webhook-signature': r.signature })

/** The v1 signature computed by hand (node:crypto), independent of the standardwebhooks library. */
const handSign = (secret: string, r: Received) =>
  'v1,' + createHmac('sha256', Buffer.from(secret.slice('whsec_'.length), 'base64')).update(`${r.id}.${r.timestamp}.${r.body}`).digest('base64')

describe('outbound webhooks over the real server', () => {
  let server: TestServer
  let rx: Awaited<ReturnType<typeof startReceiver>>
  let t: Awaited<ReturnType<typeof demoTenant>>
  let wf: string
  beforeAll(async () => {
    rx = await startReceiver()
    server = await startTestServer({ RUNRELAY_WEBHOOK_RETRY_SCHEDULE: '0,150,150,150', RUNRELAY_JOBS_INTERVAL_MS: '40' })
    t = await demoTenant(server)
    wf = await t.workflow('quick', { durationMs: 100, steps: 1, queueMs: 0 })
  })
  afterAll(async () => {
    await server?.stop()
    await rx?.close()
  })

  const endpoint = async (path: string, body: Record<string, unknown> = {}) => {
    const res = await t.client.post('/v1/webhooks', { url: rx.url + path, workflow_id: wf, ...body })
    expect(res.status).toBe(201)
    return res.body as { id: string; secret: string }
  }
  const deliveriesOf = async (endpointId: string) => (await t.client.get(`/v1/webhook-deliveries?endpoint_id=${endpointId}`)).body.items as any[]

  it('delivers a terminal event signed per Standard Webhooks (library and hand-computed HMAC agree)', async () => {
    const ep = await endpoint('/ok')
    expect(ep.secret).toMatch(/^whsec_/)
    expect((await t.client.get(`/v1/webhooks/${ep.id}`)).body.secret).toBeUndefined()
    const runId = await t.trigger(wf)
    await until(() => rx.at('/ok').length >= 1, 10_000, 'delivery')
    const r = rx.at('/ok')[0]!
    const payload = new Webhook(ep.secret).verify(r.body, headersOf(r)) as any
    expect(payload).toMatchObject({ type: 'run.status_changed', data: { event: { run_id: runId, status: 'completed' }, run: { id: runId, status: 'completed' } } })
    expect(r.signature).toBe(handSign(ep.secret, r))
    await sleep(300)
    expect(rx.at('/ok')).toHaveLength(1) // terminal only: one event per run
    const [d] = await deliveriesOf(ep.id)
    expect(d).toMatchObject({ id: r.id, status: 'succeeded', attempts: 1, run_id: runId, last_status_code: 200 })
  })

  it('retries failures with the same webhook-id, logs every attempt, and redelivers on request', async () => {
    rx.script('/flaky', [{ status: 500 }, { status: 502 }, { status: 200 }])
    const ep = await endpoint('/flaky')
    await t.trigger(wf)
    await until(async () => (await deliveriesOf(ep.id))[0]?.status === 'succeeded', 10_000, 'success after retries')
    const hits = rx.at('/flaky')
    expect(hits).toHaveLength(3)
    expect(new Set(hits.map((h) => h.id)).size).toBe(1)
    const [d] = await deliveriesOf(ep.id)
    const full = (await t.client.get(`/v1/webhook-deliveries/${d.id}`)).body
    expect(full.attempt_log.map((a: any) => a.status_code)).toEqual([500, 502, 200])
    expect(full.payload.type).toBe('run.status_changed')
    const attempts = (await t.client.get(`/v1/webhook-deliveries/${d.id}/attempts`)).body.items
    expect(attempts).toHaveLength(3)
    const re = await t.client.post(`/v1/webhook-deliveries/${d.id}/redeliver`)
    expect(re.status).toBe(202)
    await until(() => rx.at('/flaky').length === 4, 5_000, 'redelivery')
    expect(rx.at('/flaky')[3]!.id).toBe(d.id)
    const failed = await t.client.get(`/v1/webhook-deliveries?status=failed&endpoint_id=${ep.id}`)
    expect(failed.body.items).toEqual([])
  })

  it('gives up after the last retry', async () => {
    rx.script('/down', [{ status: 503 }])
    const ep = await endpoint('/down')
    await t.trigger(wf)
    await until(async () => (await deliveriesOf(ep.id))[0]?.status === 'failed', 10_000, 'failed delivery')
    expect(rx.at('/down')).toHaveLength(4) // the schedule has four entries
    expect((await deliveriesOf(ep.id))[0]).toMatchObject({ attempts: 4, last_status_code: 503, next_attempt_at: null })
  })

  it('honours Retry-After over a shorter retry delay', async () => {
    rx.script('/busy', [{ status: 429, headers: { 'retry-after': '1' } }, { status: 200 }])
    const ep = await endpoint('/busy')
    await t.trigger(wf)
    await until(() => rx.at('/busy').length === 2, 10_000, 'second attempt')
    const [a, b] = rx.at('/busy')
    expect(b!.at - a!.at).toBeGreaterThanOrEqual(950)
    const d = (await deliveriesOf(ep.id))[0]
    expect((await t.client.get(`/v1/webhook-deliveries/${d.id}/attempts`)).body.items[0]).toMatchObject({ status_code: 429, retry_after_ms: 1000 })
  })

  it('a 410 disables the endpoint; later events make no deliveries until it is enabled again', async () => {
    rx.script('/gone', [{ status: 410 }])
    const ep = await endpoint('/gone')
    await t.trigger(wf)
    await until(async () => (await t.client.get(`/v1/webhooks/${ep.id}`)).body.enabled === false, 10_000, 'disabled')
    const body = (await t.client.get(`/v1/webhooks/${ep.id}`)).body
    expect(body.disabled_reason).toMatch(/410/)
    expect((await deliveriesOf(ep.id))[0]).toMatchObject({ status: 'failed', attempts: 1 })
    const runId = await t.trigger(wf)
    await until(async () => (await t.client.get(`/v1/runs/${runId}`)).body.status === 'completed', 10_000, 'run done')
    await sleep(300)
    expect(rx.at('/gone')).toHaveLength(1)
    expect(await deliveriesOf(ep.id)).toHaveLength(1)
    const redeliver = await t.client.post(`/v1/webhook-deliveries/${(await deliveriesOf(ep.id))[0].id}/redeliver`)
    expect([redeliver.status, redeliver.body.error.code]).toEqual([409, 'endpoint_disabled'])
    rx.script('/gone', [{ status: 200 }])
    expect((await t.client.patch(`/v1/webhooks/${ep.id}`, { enabled: true })).body).toMatchObject({ enabled: true, disabled_reason: null })
  })

  it('rotation: both secrets sign during the grace period', async () => {
    const ep = await endpoint('/rotate', { events: 'status' })
    const rotated = await t.client.post(`/v1/webhooks/${ep.id}/rotate-secret`, { grace_period_seconds: 3600 })
    expect(rotated.status).toBe(200)
    expect(rotated.body.secret).not.toBe(ep.secret)
    expect(rotated.body.previous_secret_expires_at).toBeTruthy()
    await t.trigger(wf)
    await until(() => rx.at('/rotate').length >= 3, 10_000, 'status deliveries') // created, running…, completed
    const r = rx.at('/rotate')[0]!
    expect(r.signature.split(' ')).toHaveLength(2)
    new Webhook(rotated.body.secret).verify(r.body, headersOf(r))
    new Webhook(ep.secret).verify(r.body, headersOf(r))
    expect(r.signature.split(' ')).toContain(handSign(ep.secret, r))
    // Deliveries are sent concurrently and promise no arrival order (receivers order by the event's seq).
    const types = rx.at('/rotate').map((x) => JSON.parse(x.body).type)
    expect(new Set(types)).toEqual(new Set(['run.created', 'run.status_changed']))
  })

  it('CRUD, list filters and 404 for other tenants', async () => {
    const ep = await endpoint('/crud', { events: ['run.output', 'run.error'], description: 'outputs' })
    expect((await t.client.get(`/v1/webhooks/${ep.id}`)).body).toMatchObject({ events: ['run.output', 'run.error'], description: 'outputs', enabled: true })
    expect((await t.client.patch(`/v1/webhooks/${ep.id}`, { events: 'all' })).body.events).toBe('all')
    expect((await t.client.get('/v1/webhooks')).body.items.map((x: any) => x.id)).toContain(ep.id)
    const other = await demoTenant(server, 'other')
    expect((await other.client.get(`/v1/webhooks/${ep.id}`)).status).toBe(404)
    expect((await t.client.post('/v1/webhooks', { url: 'ftp://x.example/' })).status).toBe(400)
    expect((await t.client.delete(`/v1/webhooks/${ep.id}`)).body).toEqual({ deleted: true, id: ep.id })
    expect((await t.client.get(`/v1/webhooks/${ep.id}`)).status).toBe(404)
  })
})

describe('outbound webhooks: private networks refused by default', () => {
  it('refuses a loopback URL unless RUNRELAY_ALLOW_PRIVATE_NETWORK', async () => {
    const server = await startTestServer({ RUNRELAY_ALLOW_PRIVATE_NETWORK: '0' })
    try {
      const t = await demoTenant(server)
      const res = await t.client.post('/v1/webhooks', { url: 'http://127.0.0.1:9/hook' })
      expect([res.status, res.body.error.code, res.body.error.details[0].path]).toEqual([400, 'outbound_url_refused', 'body.url'])
    } finally {
      await server.stop()
    }
  })
})

describe('webhook dispatcher (fake clock, real libSQL, real receiver)', () => {
  /** A database with one workflow, a dispatcher over it (made by `make`), and counters of its reads. */
  async function dispatcherOver(make: (deps: { store: Store; secrets: SecretBox; clock: ReturnType<typeof fakeClock> }) => WebhookDispatcher) {
    const db = await tempDatabase()
    const clock = fakeClock(Date.parse('2027-01-01T00:00:00Z'))
    const secrets = await SecretBox.fromKey(newEncryptionKey())
    const { tenant, workflow } = await seedWorkflow(db.store, clock.now())
    const reads = { events: 0, endpoints: 0 }
    const count = (d: WebhookDispatcher) => {
      const eventsAfter = d.q.eventsAfter.bind(d.q), enabledEndpoints = d.q.enabledEndpoints.bind(d.q)
      d.q.eventsAfter = (...args) => { reads.events++; return eventsAfter(...args) }
      d.q.enabledEndpoints = () => { reads.endpoints++; return enabledEndpoints() }
      return d
    }
    const hosts = recordingHosts(db.store, clock)
    const newRun = () => hosts.create({ id: newId('run'), tenantId: tenant.id, workflowId: workflow.id, status: 'queued', variables: {}, runtimeVariables: {}, tags: [], connectorState: {}, outputKeys: [], lastSeq: 1, transientErrors: 0, polls: 0, createdAt: clock.now(), updatedAt: clock.now() }, { type: 'run.created', data: {} })
    const endpoint = async (url: string) => db.store.webhooks.createEndpoint({ id: newId('whe'), tenantId: tenant.id, workflowId: null, url, description: null, filter: 'all', eventTypes: [], secret: await secrets.encrypt('whsec_' + Buffer.from('k'.repeat(24)).toString('base64')), enabled: true, createdAt: clock.now(), updatedAt: clock.now() })
    const make_ = () => count(make({ store: db.store, secrets, clock }))
    return { db, clock, tenant, reads, newRun, endpoint, make: make_ }
  }
  const guarded = createGuardedFetch({ allowPrivate: true, timeoutMs: 5_000 })

  it('given the event tail\'s position, ingest reads only once it moved, and every 10th pass regardless', async () => {
    let position = 0
    const { db, reads, newRun, endpoint, make } = await dispatcherOver((deps) => new WebhookDispatcher({ ...deps, runBody, fetch: guarded, latestEventId: () => position }))
    try {
      const dispatcher = make()
      await dispatcher.ingest()
      await endpoint('http://127.0.0.1:9/none')
      await newRun()
      reads.events = 0
      // The position has not moved: the passes skip their reads ...
      for (let i = 0; i < 5; i++) expect(await dispatcher.ingest()).toBe(0)
      expect(reads.events).toBe(0)
      // ... until it does: the next pass makes the delivery.
      position = await db.store.runs.maxEventId()
      expect(await dispatcher.ingest()).toBe(1)
      expect(reads.events).toBe(1)
      // An event the position never shows (say its process died before this one's tail read it) is scanned by the 10th pass.
      await newRun()
      let passes = 0, created = 0
      while (created === 0 && passes < 20) { created += await dispatcher.ingest(); passes++ }
      expect({ created, passes }).toEqual({ created: 1, passes: 10 })
    } finally {
      db.close()
    }
  })

  it('with no endpoint enabled, ingest moves past the events without reading them; an endpoint enabled then gets the next ones', async () => {
    const { db, clock, reads, newRun, endpoint, make } = await dispatcherOver((deps) => new WebhookDispatcher({ ...deps, runBody, fetch: guarded }))
    try {
      const dispatcher = make()
      await dispatcher.ingest()
      for (let i = 0; i < 30; i++) await newRun()
      reads.events = 0
      expect(await dispatcher.ingest()).toBe(0)
      expect(reads.events, 'no event is read while no endpoint could want it').toBe(0)
      expect(await db.store.webhooks.cursor('webhooks.event_cursor', async () => -1, clock.now())).toBe(await db.store.runs.maxEventId())
      await endpoint('http://127.0.0.1:9/none')
      await newRun()
      await newRun()
      reads.endpoints = 0
      expect(await dispatcher.ingest()).toBe(2)
      // The endpoints read after the table's highest id serve the events up to it: one read of each.
      expect(reads).toEqual({ events: 1, endpoints: 1 })
    } finally {
      db.close()
    }
  })

  it('disables an endpoint that has failed continuously for 5 days; deliveries survive a new dispatcher', async () => {
    const rx = await startReceiver()
    rx.script('/fail', [{ status: 500 }])
    const hour = 3_600_000
    const { db, clock, tenant, newRun, endpoint, make } = await dispatcherOver((deps) => new WebhookDispatcher({ ...deps, fetch: guarded, runBody }, { retryScheduleMs: [0, hour, 6 * hour, 12 * hour, 24 * hour, 24 * hour, 24 * hour, 24 * hour, 24 * hour] }))
    try {
      let dispatcher = make()
      await dispatcher.ingest() // cursor starts at the current end of the events table
      const q = db.store.webhooks
      const ep = await endpoint(`${rx.url}/fail`)
      await newRun()
      for (let i = 0; i < 20; i++) {
        const { wakeAt } = await dispatcher.runOnce()
        if ((await q.getEndpoint(tenant.id, ep.id))!.enabled === false || wakeAt === null) break
        if (i === 2) dispatcher = make() // a restart: the pending delivery is a row, picked up again
        clock.set(Math.max(wakeAt, clock.now()))
      }
      const after = (await q.getEndpoint(tenant.id, ep.id))!
      expect(after.enabled).toBe(false)
      expect(after.disabledReason).toMatch(/failing continuously since 2027-01-01T00:00:00/)
      expect(after.disabledAt! - after.failingSince!).toBeGreaterThanOrEqual(5 * 86_400_000)
      const [d] = (await q.listDeliveries(tenant.id, { cursor: null, limit: 10 })).items
      expect(d!.attempts).toBe(rx.at('/fail').length)
      expect(new Set(rx.at('/fail').map((x) => x.id))).toEqual(new Set([d!.id]))
      // A second ingest of the same events makes no second delivery.
      await db.store.webhooks.advanceCursor('webhooks.event_cursor', 0, clock.now())
      await rawDb(db.store).run((await import('drizzle-orm')).sql`update settings set value = '0' where key = 'webhooks.event_cursor'`)
      expect(await make().ingest()).toBe(0)
    } finally {
      db.close()
      await rx.close()
    }
  })
})
