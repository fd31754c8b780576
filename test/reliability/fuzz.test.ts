/**
 * Property-based fuzzing (fast-check) of every documented route's body and query, and of
 * the messages a WebSocket client may send: never a 500, and a rejected request never
 * changes what the tenant has stored.
 */
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openWs } from '../helpers/clients.ts'
import { demoTenant, sleep } from '../helpers/live.ts'
import { startTestServer, type TestServer } from '../helpers/server.ts'
import { recordFigures } from './figures.ts'

const RUNS_PER_ROUTE = 12

describe('reliability: fuzzing', () => {
  let server: TestServer
  let t: Awaited<ReturnType<typeof demoTenant>>
  const ids: Record<string, string> = {}
  const figures: Record<string, unknown> = {}

  beforeAll(async () => {
    server = await startTestServer({ RUNRELAY_RATE_LIMIT_PER_MINUTE: '0' })
    t = await demoTenant(server, 'fuzz')
    ids.connections = t.connectionId
    ids.workflows = await t.workflow('fuzz', { durationMs: 60_000 })
    ids.runs = await t.trigger(ids.workflows)
    await t.client.post(`/v1/runs/${ids.runs}/cancel`, {})
    // A key of its own for the key routes (fuzzing DELETE /v1/keys/{id} must not revoke the caller's key).
    ids.keys = (await t.client.post('/v1/keys', { name: 'victim', scopes: ['runs:read'] })).body.id
  })
  afterAll(async () => {
    await server?.stop()
    recordFigures('fuzz', figures)
  })

  const req = (method: string, path: string, body?: string) =>
    server.runtime.app.request(path, { method, headers: { authorization: `Bearer ${t.key}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) }, body })
  /** What the tenant has stored, minus what changes by itself (timestamps of use, runs' progress). */
  const snapshot = async () => {
    const out: Record<string, unknown> = {}
    for (const coll of ['connections', 'workflows', 'keys', 'schedules', 'webhooks']) {
      const res = await req('GET', `/v1/${coll}?limit=200`)
      if (res.status === 200) out[coll] = ((await res.json()) as any).items.map((x: any) => ({ ...x, last_used_at: undefined }))
    }
    out.runs = ((await (await req('GET', '/v1/runs?limit=200')).json()) as any).items.map((r: any) => r.id)
    return JSON.stringify(out)
  }

  it('every route: arbitrary bodies and queries never give a 500, and a rejected request stores nothing', async () => {
    const spec = await (await server.runtime.app.request('/openapi.json')).json() as any
    const ops: Array<{ method: string; path: string }> = []
    for (const [path, methods] of Object.entries<any>(spec.paths)) {
      for (const [method, op] of Object.entries<any>(methods)) {
        if (['root', 'none', 'signature'].includes(op['x-runrelay-scope'])) continue
        if (path.includes('/stream')) continue // WebSocket/SSE upgrades: fuzzed below
        ops.push({ method: method.toUpperCase(), path })
      }
    }
    const body = fc.oneof(
      fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
      fc.dictionary(fc.constantFrom('name', 'provider', 'base_url', 'config', 'credentials', 'connection_id', 'upstream_workflow_id', 'variables', 'tags', 'scheduled_at', 'poll_policy', 'data', 'reason', 'scopes', 'run_ids', 'ttl_seconds', 'workflow_id', 'url', 'events', 'cron', 'at'), fc.jsonValue({ maxDepth: 2 })).map((v) => JSON.stringify(v)),
      fc.string({ maxLength: 200 }),
    )
    const query = fc.dictionary(fc.constantFrom('limit', 'cursor', 'after', 'status', 'tag', 'workflow_id', 'token', 'x'), fc.string({ maxLength: 40 }), { maxKeys: 3 })
    let requests = 0, rejected = 0, accepted = 0
    const statuses: Record<string, number> = {}
    for (const op of ops) {
      const path = op.path.replace(/\{(\w+)\}/g, (_, name) => (name === 'keyId' ? ids.keys! : ids[op.path.split('/')[2]!] ?? 'zz_missing'))
      await fc.assert(fc.asyncProperty(body, query, async (b, q) => {
        const before = await snapshot()
        const qs = new URLSearchParams(q).toString()
        const res = await req(op.method, path + (qs ? `?${qs}` : ''), op.method === 'GET' || op.method === 'DELETE' ? undefined : b)
        requests++
        statuses[res.status] = (statuses[res.status] ?? 0) + 1
        const text = await res.text()
        if (res.status >= 500) throw new Error(`${op.method} ${op.path} → ${res.status} ${text} for body ${b} query ${qs}`)
        if (res.status >= 400) {
          rejected++
          expect(JSON.parse(text).error.code, text).toBeTypeOf('string')
          if (await snapshot() !== before) throw new Error(`${op.method} ${op.path} → ${res.status} changed stored state (body ${b})`)
        } else accepted++
      }), { numRuns: RUNS_PER_ROUTE, seed: Number(process.env.FUZZ_SEED ?? 42) })
    }
    figures.http = { routes: ops.length, runs_per_route: RUNS_PER_ROUTE, requests, rejected, accepted, statuses, server_errors: statuses['500'] ?? 0 }
  }, 120_000)

  it('WebSocket client messages: arbitrary frames get an error message, never a crash or a dropped stream', async () => {
    const ws = openWs(`${server.wsUrl}/v1/stream`, { authorization: `Bearer ${t.key}` })
    await ws.opened
    const frames = fc.sample(fc.oneof(
      fc.string({ maxLength: 300 }),
      fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
      fc.record({ type: fc.constantFrom('ping', 'refresh_token', 'hello', 'subscribe', ''), token: fc.string({ maxLength: 100 }) }).map((v) => JSON.stringify(v)),
      fc.constant('x'.repeat(10_000)),
    ), { numRuns: 300, seed: 7 })
    for (const f of frames) ws.ws.send(f)
    ws.send({ type: 'ping' })
    await sleep(500)
    expect(ws.closeInfo).toBeNull()
    const replies = ws.messages.filter((m) => m.type === 'error' || m.type === 'pong')
    expect(replies.length).toBeGreaterThanOrEqual(frames.length)
    expect((await t.client.get('/healthz')).status).toBe(200)
    ws.close()
    figures.websocket = { frames: frames.length, replies: replies.length, closed: false }
  }, 30_000)
})
