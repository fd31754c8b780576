/**
 * A change to a connection or a workflow reaches the runs already in flight: the watcher keeps
 * each run's binding between ticks (services/binder.ts), and a new credential, base URL or
 * workflow config must still be what the next poll uses. Real server; the upstream is a
 * loopback fake that records what each poll carried.
 */
import { createServer, type Server } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTenant, startTestServer, until, type TestServer } from '../helpers/server.ts'

interface Seen { path: string; auth: string | undefined; at: number }

function recordingUpstream(seen: Seen[]): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    seen.push({ path: req.url ?? '', auth: req.headers.authorization, at: Date.now() })
    res.writeHead(req.method === 'POST' ? 201 : 200, { 'content-type': 'application/json' })
    res.end(req.method === 'POST' ? '{"id":"job-1","status":"pending"}' : '{"id":"job-1","status":"running","progress":0.5}')
  })
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, url: `http://127.0.0.1:${(server.address() as { port: number }).port}` })))
}

describe('a run in flight follows changes to its connection and workflow', () => {
  let server: TestServer
  const seenA: Seen[] = [], seenB: Seen[] = []
  let a: { server: Server; url: string }, b: { server: Server; url: string }

  beforeAll(async () => {
    server = await startTestServer()
    a = await recordingUpstream(seenA)
    b = await recordingUpstream(seenB)
  })
  afterAll(async () => {
    await server?.stop()
    a?.server.close()
    b?.server.close()
  })

  it('the next poll carries the new credential, goes to the new base URL and the new status path', async () => {
    const { client } = await createTenant(server, 'changes')
    const conn = await client.post('/v1/connections', { name: 'vendor', provider: 'http', base_url: a.url, config: { auth: { type: 'header', header: 'authorization', scheme: 'Bearer' } }, credentials: { token: 'token-one' } })
    expect(conn.status, JSON.stringify(conn.body)).toBe(201)
    const config = { trigger: { method: 'POST', path: '/jobs' }, upstreamIdPath: 'id', status: { method: 'GET', path: '/jobs/{{upstream_id}}' }, statusPath: 'status', progressPath: 'progress' }
    const wf = await client.post('/v1/workflows', { name: 'wf', connection_id: conn.body.id, upstream_workflow_id: 'jobs', config, poll_policy: { first_interval_ms: 100, max_interval_ms: 100 } })
    expect(wf.status, JSON.stringify(wf.body)).toBe(201)
    const run = await client.post(`/v1/workflows/${wf.body.id}/runs`, { variables: {} })
    expect(run.status).toBe(202)
    await until(() => seenA.filter((s) => s.path === '/jobs/job-1').length >= 2, 10_000, 'polls with the first credential')
    expect(seenA.every((s) => s.auth === 'Bearer token-one')).toBe(true)

    // New credential: the next polls carry it.
    expect((await client.patch(`/v1/connections/${conn.body.id}`, { credentials: { token: 'token-two' } })).status).toBe(200)
    const changed = Date.now()
    await until(() => seenA.some((s) => s.at > changed && s.auth === 'Bearer token-two'), 5_000, 'a poll with the new credential')

    // New base URL: the next polls go to the other upstream.
    expect((await client.patch(`/v1/connections/${conn.body.id}`, { base_url: b.url })).status).toBe(200)
    await until(() => seenB.some((s) => s.path === '/jobs/job-1' && s.auth === 'Bearer token-two'), 5_000, 'a poll at the new base URL')

    // New workflow config: the next polls use its status path.
    const patched = await client.patch(`/v1/workflows/${wf.body.id}`, { config: { ...config, status: { method: 'GET', path: '/v2/jobs/{{upstream_id}}' } } })
    expect(patched.status, JSON.stringify(patched.body)).toBe(200)
    await until(() => seenB.some((s) => s.path === '/v2/jobs/job-1'), 5_000, 'a poll at the new status path')
    await client.post(`/v1/runs/${run.body.id}/cancel`, {})
  }, 30_000)
})
