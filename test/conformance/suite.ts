/**
 * One behaviour, every runtime: this suite speaks only HTTP, WebSocket and SSE to a running
 * runrelay, so Node, Deno and workerd (wrangler dev) all run the same assertions. A
 * behaviour that differs between runtimes is a bug in one of them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { genericWorkflowConfig, startGenericUpstream, type GenericUpstream } from '../fakes/generic-upstream.ts'
import { openSse, openWs } from '../helpers/clients.ts'
import { api, until } from '../helpers/server.ts'

export interface LaunchedServer { url: string; rootKey: string; stop(): Promise<void> }
export type Launch = () => Promise<LaunchedServer>

const WAIT = 20_000

export function conformanceSuite(runtime: string, launch: Launch): void {
  describe(`conformance: ${runtime}`, () => {
    let server: LaunchedServer
    let upstream: GenericUpstream
    let key: string
    let client: ReturnType<typeof api>
    let other: ReturnType<typeof api>
    let otherKey: string
    let demoWorkflow: string
    let httpWorkflow: string
    let httpConnection: string

    const wsUrl = (path: string) => server.url.replace(/^http/, 'ws') + path
    const auth = () => ({ authorization: `Bearer ${key}` })

    const history = async (runId: string) => (await client.get(`/v1/runs/${runId}/events?limit=1000`)).body.events as any[]
    const waitStatus = (runId: string, statuses: string[]) =>
      until(async () => { const r = await client.get(`/v1/runs/${runId}`); return statuses.includes(r.body.status) ? r.body : null }, WAIT, `run ${runId} to reach ${statuses}`)
    const trigger = async (workflowId: string, body: unknown = {}) => {
      const res = await client.post(`/v1/workflows/${workflowId}/runs`, body)
      expect(res.status, JSON.stringify(res.body)).toBe(202)
      return res.body
    }
    const expectGapless = (events: any[]) => expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1))

    beforeAll(async () => {
      upstream = await startGenericUpstream()
      server = await launch()
      const root = api(server.url, server.rootKey)
      const t1 = await root.post('/v1/tenants', { name: 'conformance' })
      expect(t1.status).toBe(201)
      key = t1.body.key.key
      client = api(server.url, key)
      const t2 = await root.post('/v1/tenants', { name: 'other' })
      otherKey = t2.body.key.key
      other = api(server.url, otherKey)

      const demo = await client.post('/v1/connections', { name: 'demo', provider: 'demo' })
      expect(demo.status).toBe(201)
      const wf = await client.post('/v1/workflows', { name: 'demo', connection_id: demo.body.id, upstream_workflow_id: 'demo', config: { durationMs: 600, steps: 3, queueMs: 100 }, poll_policy: { first_interval_ms: 100, max_interval_ms: 200 }, tags: ['demo'] })
      expect(wf.status).toBe(201)
      demoWorkflow = wf.body.id

      const conn = await client.post('/v1/connections', { name: 'fake', provider: 'http', base_url: upstream.url, config: { auth: { type: 'header', header: 'Authorization', scheme: 'Bearer' } }, credentials: { token: 'upstream-secret-token' } })
      expect(conn.status, JSON.stringify(conn.body)).toBe(201)
      httpConnection = conn.body.id
      const hw = await client.post('/v1/workflows', { name: 'fake', connection_id: httpConnection, upstream_workflow_id: 'jobs', config: genericWorkflowConfig, input_template: { script: '{{script}}' }, poll_policy: { first_interval_ms: 100, max_interval_ms: 300, max_transient_errors: 10 }, tags: ['fake'] })
      expect(hw.status, JSON.stringify(hw.body)).toBe(201)
      httpWorkflow = hw.body.id
    }, 120_000)

    afterAll(async () => {
      await server?.stop()
      await upstream?.close()
    })

    it('answers /healthz and serves an OpenAPI document generated from the schemas', async () => {
      expect((await api(server.url).get('/healthz')).body.ok).toBe(true)
      const spec = (await api(server.url).get('/openapi.json')).body
      expect(spec.openapi).toMatch(/^3\./)
      expect(spec.paths['/v1/workflows/{id}/runs'].post.requestBody).toBeTruthy()
      expect(spec.paths['/v1/runs/{id}'].get).toBeTruthy()
    })

    it('answers CORS preflights so browser pages on other origins can call the API', async () => {
      const res = await fetch(`${server.url}/v1/runs`, { method: 'OPTIONS', headers: { origin: 'https://app.example', 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization' } })
      expect(res.status).toBeLessThan(300)
      expect(res.headers.get('access-control-allow-origin')).toBe('*')
      expect(res.headers.get('access-control-allow-headers')).toContain('authorization')
    })

    it('authenticates with Bearer and X-API-Key, refuses missing and bad keys with 401', async () => {
      expect((await api(server.url).get('/v1/runs')).status).toBe(401)
      expect((await api(server.url, 'rr_not_a_real_key_at_all').get('/v1/runs')).status).toBe(401)
      const viaHeader = await api(server.url).get('/v1/workflows', { 'x-api-key': key })
      expect(viaHeader.status).toBe(200)
      expect((await client.get('/v1/workflows')).status).toBe(200)
    })

    it('enforces scopes (403) and lists keys by prefix only; a revoked key is refused', async () => {
      const created = await client.post('/v1/keys', { name: 'reader', scopes: ['runs:read'] })
      expect(created.status).toBe(201)
      const reader = api(server.url, created.body.key)
      expect((await reader.get('/v1/runs')).status).toBe(200)
      const denied = await reader.post(`/v1/workflows/${demoWorkflow}/runs`, {})
      expect(denied.status).toBe(403)
      expect(denied.body.error.code).toBe('missing_scope')
      const listed = await client.get('/v1/keys')
      const row = listed.body.items.find((k: any) => k.id === created.body.id)
      expect(row.prefix).toBe(created.body.key.slice(0, 10))
      expect(JSON.stringify(listed.body)).not.toContain(created.body.key)
      expect((await client.delete(`/v1/keys/${created.body.id}`)).status).toBe(200)
      expect((await reader.get('/v1/runs')).status).toBe(401)
    })

    it('tells a credential who it is (GET /v1/me)', async () => {
      const me = await client.get('/v1/me')
      expect(me.status).toBe(200)
      expect(me.body).toMatchObject({ kind: 'key', key_id: expect.any(String), token_scope: null })
      expect(me.body.scopes).toContain('runs:write')
      const reader = (await client.post('/v1/keys', { name: 'me-reader', scopes: ['runs:read'] })).body.key
      expect((await api(server.url, reader).get('/v1/me')).body.scopes).toEqual(['runs:read'])
      expect((await api(server.url, server.rootKey).get('/v1/me')).body.kind).toBe('root')
      expect((await api(server.url).get('/v1/me')).status).toBe(401)
    })

    it('never returns connection credentials', async () => {
      const res = await client.get(`/v1/connections/${httpConnection}`)
      expect(res.status).toBe(200)
      expect(res.body.credential_fields).toEqual(['token'])
      expect(JSON.stringify(res.body)).not.toContain('upstream-secret-token')
      const list = await client.get('/v1/connections')
      expect(JSON.stringify(list.body)).not.toContain('upstream-secret-token')
    })

    it('PATCH changes only the fields given', async () => {
      const wf = await client.post('/v1/workflows', { name: 'patchable', connection_id: httpConnection, upstream_workflow_id: 'x', config: genericWorkflowConfig, tags: ['keep'], poll_policy: { first_interval_ms: 300 } })
      const patched = await client.patch(`/v1/workflows/${wf.body.id}`, { name: 'renamed' })
      expect(patched.status).toBe(200)
      expect(patched.body).toMatchObject({ name: 'renamed', tags: ['keep'], config: genericWorkflowConfig, poll_policy: { first_interval_ms: 300 } })
      const policy = await client.patch(`/v1/workflows/${wf.body.id}`, { poll_policy: { max_interval_ms: 900 } })
      expect(policy.body).toMatchObject({ tags: ['keep'], config: genericWorkflowConfig, poll_policy: { first_interval_ms: 300, max_interval_ms: 900 } })
      const bad = await client.patch(`/v1/workflows/${wf.body.id}`, { poll_policy: { first_interval_ms: 5000 } })
      expect(bad.status).toBe(400)
      expect((await client.get(`/v1/workflows/${wf.body.id}`)).body.poll_policy).toEqual({ first_interval_ms: 300, max_interval_ms: 900 })
      const conn = await client.patch(`/v1/connections/${httpConnection}`, { name: 'fake renamed' })
      expect(conn.body).toMatchObject({ name: 'fake renamed', credential_fields: ['token'], base_url: upstream.url })
    })

    it('paginates with a cursor', async () => {
      for (let i = 0; i < 3; i++) await client.post('/v1/workflows', { name: `page-${i}`, connection_id: httpConnection, upstream_workflow_id: 'x', config: genericWorkflowConfig })
      const seen: string[] = []
      let cursor: string | null = null
      do {
        const res: any = await client.get(`/v1/workflows?limit=2${cursor ? `&cursor=${cursor}` : ''}`)
        expect(res.status).toBe(200)
        expect(res.body.items.length).toBeLessThanOrEqual(2)
        seen.push(...res.body.items.map((w: any) => w.id))
        cursor = res.body.next_cursor
      } while (cursor)
      expect(new Set(seen).size).toBe(seen.length)
      expect(seen.length).toBeGreaterThanOrEqual(5)
      expect((await client.get('/v1/workflows?cursor=garbage')).status).toBe(400)
    })

    it('streams a run over WebSocket from run.created to completed, seq 1..n, then closes 1000', async () => {
      const run = await trigger(demoWorkflow)
      expect(run.status).toBe('queued')
      const sub = openWs(wsUrl(`/v1/runs/${run.id}/stream?after=0`), auth())
      await sub.opened
      const closed = await Promise.race([sub.closed, new Promise<never>((_, rej) => setTimeout(() => rej(new Error('no close')), WAIT))])
      expect(closed.code).toBe(1000)
      expect(sub.messages[0].type).toBe('hello')
      expectGapless(sub.events)
      expect(sub.events[0].type).toBe('run.created')
      const last = sub.events[sub.events.length - 1]
      expect(last.type).toBe('run.status_changed')
      expect(last.status).toBe('completed')
      expect(sub.events.map((e) => e.status)).toContain('running')
      expect(sub.events).toEqual(await history(run.id))
      const stored = (await client.get(`/v1/runs/${run.id}`)).body
      expect(stored.result).toMatchObject({ ok: true })
      expect(stored.progress).toBe(1)
    })

    it('replays exactly the missed events after a forced disconnect (no gap, no duplicate)', async () => {
      const run = await trigger(demoWorkflow)
      const first = openWs(wsUrl(`/v1/runs/${run.id}/stream`), auth())
      await until(() => first.events.length >= 2, WAIT, 'two events')
      first.kill()
      const got = [...first.events]
      await waitStatus(run.id, ['completed'])
      const second = openWs(wsUrl(`/v1/runs/${run.id}/stream?after=${got[got.length - 1]!.seq}`), auth())
      await second.closed
      const all = [...got, ...second.events]
      expectGapless(all)
      expect(all).toEqual(await history(run.id))
    })

    it('streams history over SSE with ids = seq, and Last-Event-ID resumes', async () => {
      const run = await trigger(demoWorkflow)
      await waitStatus(run.id, ['completed'])
      const stored = await history(run.id)
      const sse = openSse(`${server.url}/v1/runs/${run.id}/events`, auth())
      await until(() => sse.ended, WAIT, 'SSE end after the terminal event')
      expect(sse.status).toBe(200)
      expect(sse.events.map((e) => Number(e.id))).toEqual(stored.map((e) => e.seq))
      expect(sse.events.map((e) => e.event)).toEqual(stored.map((e) => e.type))
      const resumed = openSse(`${server.url}/v1/runs/${run.id}/events`, { ...auth(), 'last-event-id': '3' })
      await until(() => resumed.ended, WAIT, 'resumed SSE end')
      expect(resumed.events.map((e) => Number(e.id))).toEqual(stored.filter((e) => e.seq > 3).map((e) => e.seq))
    })

    it('ends streams of a finished run: a WebSocket resumed at its end closes 1000, SSE at its end is 204', async () => {
      const run = await trigger(demoWorkflow)
      await waitStatus(run.id, ['completed'])
      const last = (await history(run.id)).at(-1)!.seq
      const ws = openWs(wsUrl(`/v1/runs/${run.id}/stream?after=${last}`), auth())
      const closed = await Promise.race([ws.closed, new Promise<never>((_, rej) => setTimeout(() => rej(new Error('no close after the replay')), WAIT))])
      expect(closed.code).toBe(1000)
      expect(ws.events).toEqual([])
      expect(ws.messages.map((m) => m.type)).toEqual(['hello', 'caught_up'])
      // Resumed before its end: the rest, then 1000.
      const before = openWs(wsUrl(`/v1/runs/${run.id}/stream?after=${last - 1}`), auth())
      expect((await before.closed).code).toBe(1000)
      expect(before.events.map((e) => e.seq)).toEqual([last])
      // SSE: 204 at the end (EventSource does not come back), on both run stream routes.
      for (const path of [`/v1/runs/${run.id}/events`, `/v1/runs/${run.id}/stream`]) {
        const res = await fetch(`${server.url}${path}`, { headers: { ...auth(), accept: 'text/event-stream', 'last-event-id': String(last) } })
        expect(res.status, path).toBe(204)
      }
      const tail = openSse(`${server.url}/v1/runs/${run.id}/stream?after=${last - 1}`, auth())
      await until(() => tail.ended, WAIT, 'the SSE stream of a finished run to end')
      expect(tail.events.map((e) => Number(e.id))).toEqual([last])
    })

    it('closes a WebSocket with 1009 on a client message over 64 KiB, and refuses JSON nested deeper than 64', async () => {
      const ws = openWs(wsUrl('/v1/stream'), auth())
      await ws.opened
      const deepText = (depth: number) => '['.repeat(depth - 1) + '{}' + ']'.repeat(depth - 1)
      ws.ws.send(`{"type":"ping","pad":${deepText(100)}}`)
      await until(() => ws.messages.some((m) => m.type === 'error'), WAIT, 'the refusal of a deep message')
      expect(ws.messages.find((m) => m.type === 'error')).toMatchObject({ code: 'json_too_deep' })
      expect(ws.messages.some((m) => m.type === 'pong')).toBe(false)
      ws.ws.send('x'.repeat(65 * 1024))
      const closed = await Promise.race([ws.closed, new Promise<never>((_, rej) => setTimeout(() => rej(new Error('no close')), WAIT))])
      expect(closed.code).toBe(1009)
      const runs = (await client.get('/v1/runs?limit=200')).body.items.length
      const deep = await client.post(`/v1/workflows/${demoWorkflow}/runs`, `{"variables":{"v":${deepText(5_000)}}}`)
      expect(deep.status).toBe(400)
      expect(deep.body.error.code).toBe('json_too_deep')
      expect((await client.post('/v1/workflows', `{"name":"deep","input_template":${deepText(65)}}`)).status).toBe(400)
      expect((await client.get('/v1/runs?limit=200')).body.items.length).toBe(runs)
    })

    it('feeds the tenant over WebSocket with workflow, status and tag filters, resumable by id', async () => {
      const all = openWs(wsUrl('/v1/stream'), auth())
      const onlyFake = openWs(wsUrl(`/v1/stream?workflow_id=${httpWorkflow}`), auth())
      const onlyCompleted = openWs(wsUrl('/v1/stream?status=completed&tag=demo'), auth())
      await Promise.all([all.opened, onlyFake.opened, onlyCompleted.opened])
      await until(() => [all, onlyFake, onlyCompleted].every((s) => s.messages.some((m) => m.type === 'caught_up')), WAIT, 'caught up')
      const demoRun = await trigger(demoWorkflow)
      const fakeRun = await trigger(httpWorkflow, { variables: { script: [{ status: 'running' }, { status: 'completed', result: { n: 1 } }] } })
      await waitStatus(demoRun.id, ['completed'])
      await waitStatus(fakeRun.id, ['completed'])
      await until(() => all.events.filter((e) => e.type === 'run.status_changed' && e.status === 'completed').length >= 2, WAIT, 'feed completions')
      expect(all.events.every((e) => [demoRun.id, fakeRun.id].includes(e.run_id))).toBe(true)
      expect(onlyFake.events.length).toBeGreaterThan(0)
      expect(onlyFake.events.every((e) => e.workflow_id === httpWorkflow)).toBe(true)
      await until(() => onlyCompleted.events.length >= 1, WAIT, 'filtered completion')
      expect(onlyCompleted.events.every((e) => e.status === 'completed' && e.tags.includes('demo'))).toBe(true)
      expect(onlyCompleted.events.map((e) => e.run_id)).toEqual([demoRun.id])
      // Feed ids increase; resuming after one id gives exactly the later ones.
      const ids = all.events.map((e) => e.id)
      expect([...ids].sort((a, b) => a - b)).toEqual(ids)
      const mid = ids[Math.floor(ids.length / 2)]!
      const resumed = openWs(wsUrl(`/v1/stream?after=${mid}`), auth())
      await until(() => resumed.messages.some((m) => m.type === 'caught_up'), WAIT, 'resumed caught up')
      expect(resumed.events.map((e) => e.id)).toEqual(ids.filter((i) => i > mid))
      for (const s of [all, onlyFake, onlyCompleted, resumed]) s.close()
    })

    it('honours Idempotency-Key: same body → same run, other body → 422', async () => {
      const headers = { 'idempotency-key': `idem-${runtime}-1` }
      const a = await client.post(`/v1/workflows/${demoWorkflow}/runs`, { variables: { n: 1 } }, headers)
      const b = await client.post(`/v1/workflows/${demoWorkflow}/runs`, { variables: { n: 1 } }, headers)
      expect(a.status).toBe(202)
      expect(b.status).toBe(202)
      expect(b.body.id).toBe(a.body.id)
      const c = await client.post(`/v1/workflows/${demoWorkflow}/runs`, { variables: { n: 2 } }, headers)
      expect(c.status).toBe(422)
      expect(c.body.error.code).toBe('idempotency_key_mismatch')
      const viaRuns = await client.post('/v1/runs', { workflow_id: demoWorkflow, variables: { n: 3 } }, { 'idempotency-key': `idem-${runtime}-2` })
      expect(viaRuns.status).toBe(202)
      expect(viaRuns.body.workflow_id).toBe(demoWorkflow)
    })

    it('polls an HTTP upstream through transient failures and Retry-After, and keeps the result', async () => {
      const script = [{ http: 503 }, { status: 'running', progress: 0.5 }, { http: 429, retryAfter: 1 }, { malformed: true }, { status: 'completed', progress: 1, result: { answer: 42 } }]
      const run = await trigger(httpWorkflow, { variables: { script } })
      const done = await waitStatus(run.id, ['completed', 'failed'])
      expect(done.status).toBe('completed')
      expect(done.result).toEqual({ answer: 42 })
      expect(done.upstream_id).toMatch(/^job-/)
      const events = await history(run.id)
      expectGapless(events)
      const errors = events.filter((e) => e.type === 'run.error')
      expect(errors.length).toBe(3)
      expect(errors.every((e) => e.data.transient === true)).toBe(true)
      expect(errors.map((e) => e.data.error.code)).toEqual(['upstream_unavailable', 'upstream_rate_limited', 'upstream_malformed'])
      const job = upstream.jobs.get(done.upstream_id)!
      // The poll after the 429 (the 4th) came no sooner than its Retry-After of 1 s.
      expect(job.pollTimes[3]! - job.pollTimes[2]!).toBeGreaterThanOrEqual(950)
    })

    it('fails a run on a final upstream error and keeps the upstream\'s error', async () => {
      const run = await trigger(httpWorkflow, { variables: { script: [{ http: 404, body: { error: 'job vanished' } }] } })
      const done = await waitStatus(run.id, ['failed', 'completed'])
      expect(done.status).toBe('failed')
      expect(done.error.code).toBe('upstream_http_404')
      expect(done.error.body).toEqual({ error: 'job vanished' })
    })

    it('ends a run past its deadline as timed_out', async () => {
      const wf = await client.post('/v1/workflows', { name: 'short', connection_id: httpConnection, upstream_workflow_id: 'jobs', config: genericWorkflowConfig, input_template: { script: '{{script}}' }, poll_policy: { first_interval_ms: 100, max_interval_ms: 200, deadline_ms: 1000 } })
      const run = await trigger(wf.body.id, { variables: { script: [{ status: 'running' }] } })
      const done = await waitStatus(run.id, ['timed_out', 'failed', 'completed'])
      expect(done.status).toBe('timed_out')
      expect(done.error.code).toBe('deadline_exceeded')
    })

    it('cancels a run (forwarded upstream), then answers 409 to a second cancel', async () => {
      const run = await trigger(httpWorkflow, { variables: { script: [{ status: 'running' }] } })
      const started = await waitStatus(run.id, ['running'])
      const res = await client.post(`/v1/runs/${run.id}/cancel`, {})
      expect(res.status).toBe(200)
      expect(res.body.status).toBe('canceled')
      expect(upstream.jobs.get(started.upstream_id)!.canceled).toBe(true)
      const again = await client.post(`/v1/runs/${run.id}/cancel`, {})
      expect(again.status).toBe(409)
      expect(again.body.error.code).toBe('run_finished')
      const events = await history(run.id)
      expect(events.slice(-2).map((e) => e.type)).toEqual(['run.command', 'run.status_changed'])
      expect((await client.post(`/v1/runs/${run.id}/pause`, {})).status).toBe(409)
    })

    it('answers bad input with JSON errors and changes nothing', async () => {
      const before = (await client.get('/v1/workflows?limit=200')).body.items.length
      const bad = await client.post('/v1/workflows', { name: '', connection_id: httpConnection })
      expect(bad.status).toBe(400)
      expect(bad.body.error.code).toBe('validation_failed')
      expect(bad.body.error.details.length).toBeGreaterThan(0)
      expect((await client.raw('POST', '/v1/workflows', '{not json', { 'content-type': 'application/json' })).status).toBe(400)
      const big = await client.post('/v1/workflows', { name: 'x', connection_id: httpConnection, upstream_workflow_id: 'x', config: genericWorkflowConfig, input_template: { blob: 'x'.repeat(1_100_000) } })
      expect(big.status).toBe(413)
      expect(big.body.error.code).toBe('payload_too_large')
      const missing = await client.post(`/v1/workflows/${httpWorkflow}/runs`, {})
      expect(missing.status).toBe(400)
      expect(missing.body.error.code).toBe('missing_variables')
      expect((await client.get('/v1/workflows?limit=200')).body.items.length).toBe(before)
      expect((await client.get('/v1/runs/run_doesnotexist')).status).toBe(404)
      expect((await client.get('/v1/nope')).body.error.code).toBe('not_found')
    })

    it('isolates tenants: another tenant\'s objects are 404, in lists and streams too', async () => {
      const otherFeed = openWs(wsUrl('/v1/stream'), { authorization: `Bearer ${otherKey}` })
      await until(() => otherFeed.messages.some((m) => m.type === 'caught_up'), WAIT, 'other feed caught up')
      const run = await trigger(demoWorkflow)
      expect((await other.get(`/v1/runs/${run.id}`)).status).toBe(404)
      expect((await other.get(`/v1/runs/${run.id}/events`)).status).toBe(404)
      expect((await other.get(`/v1/workflows/${demoWorkflow}`)).status).toBe(404)
      expect((await other.get(`/v1/connections/${httpConnection}`)).status).toBe(404)
      expect((await other.post(`/v1/runs/${run.id}/cancel`, {})).status).toBe(404)
      expect((await other.post(`/v1/workflows/${demoWorkflow}/runs`, {})).status).toBe(404)
      expect((await other.get('/v1/runs')).body.items).toEqual([])
      const ws = openWs(wsUrl(`/v1/runs/${run.id}/stream`), { authorization: `Bearer ${otherKey}` })
      await expect(ws.opened).rejects.toMatchObject({ status: 404 })
      await waitStatus(run.id, ['completed'])
      expect(otherFeed.events).toEqual([])
      otherFeed.close()
    })
  })
}
