/**
 * A key revoked through one process stops working on the others within a fraction of a
 * second, not after their read cache's 5 s: every process empties its cache when the shared
 * change counter moves (Store.syncReadCache, every 250 ms). The same holds for a workflow
 * changed through another process.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { clusterTenant, startCluster, type Cluster } from '../helpers/cluster.ts'
import { api } from '../helpers/server.ts'

/** Well under the 5 s read-cache TTL: a process that only waited for its cache to expire fails this. */
const PROPAGATION_LIMIT_MS = 2_000

describe('multiprocess: changes of cached rows reach the other processes at once', () => {
  let cluster: Cluster
  beforeAll(async () => { cluster = await startCluster(2) }, 180_000)
  afterAll(async () => { await cluster?.close() })

  it('a key revoked on process 0 is refused by process 1 within 2 s, and stays refused', async () => {
    const { client } = await clusterTenant(cluster, 'revoke')
    const made = await client(0).post('/v1/keys', { name: 'leaving', scopes: ['workflows:read'] })
    expect(made.status).toBe(201)
    const leaving = (i: number) => api(cluster.url(i), made.body.key)
    // Process 1 reads the key now, so it sits in its read cache.
    expect((await leaving(1).get('/v1/workflows')).status).toBe(200)
    expect((await leaving(1).get('/v1/workflows')).status).toBe(200)

    const revoked = await client(0).delete(`/v1/keys/${made.body.id}`)
    expect(revoked.status).toBeLessThan(300)
    const started = Date.now()
    let status = 200
    while (status === 200 && Date.now() - started < 10_000) {
      status = (await leaving(1).get('/v1/workflows')).status
      if (status === 200) await new Promise((r) => setTimeout(r, 20))
    }
    const took = Date.now() - started
    expect(status).toBe(401)
    expect(took, `process 1 still accepted the revoked key for ${took} ms`).toBeLessThan(PROPAGATION_LIMIT_MS)
    for (let i = 0; i < 5; i++) expect((await leaving(1).get('/v1/workflows')).status).toBe(401)
  }, 60_000)

  it('a workflow renamed on process 0 reads renamed on process 1 within 2 s', async () => {
    const { client } = await clusterTenant(cluster, 'patch')
    const connection = await client(0).post('/v1/connections', { name: 'demo', provider: 'demo' })
    expect(connection.status).toBe(201)
    const wf = await client(0).post('/v1/workflows', { name: 'w', connection_id: connection.body.id, upstream_workflow_id: 'demo', config: { durationMs: 1000 } })
    expect(wf.status, JSON.stringify(wf.body)).toBe(201)
    expect((await client(1).get(`/v1/workflows/${wf.body.id}`)).body.name).toBe('w')
    expect((await client(0).patch(`/v1/workflows/${wf.body.id}`, { name: 'renamed' })).status).toBe(200)
    const started = Date.now()
    let name = 'w'
    while (name !== 'renamed' && Date.now() - started < 10_000) {
      name = (await client(1).get(`/v1/workflows/${wf.body.id}`)).body.name
      if (name !== 'renamed') await new Promise((r) => setTimeout(r, 20))
    }
    expect(name).toBe('renamed')
    expect(Date.now() - started).toBeLessThan(PROPAGATION_LIMIT_MS)
  }, 60_000)

  it('tokens minted by a key revoked on process 0, or revoked themselves, are refused by process 1 within 2 s', async () => {
    const { client } = await clusterTenant(cluster, 'tokens')
    const connection = await client(0).post('/v1/connections', { name: 'demo', provider: 'demo' })
    const wf = await client(0).post('/v1/workflows', { name: 'w', connection_id: connection.body.id, upstream_workflow_id: 'demo', config: { durationMs: 1000 } })
    const minter = await client(0).post('/v1/keys', { name: 'minter', scopes: ['runs:read', 'runs:write'] })
    const mint = async (body: Record<string, unknown>) => {
      const res = await api(cluster.url(0), minter.body.key).post('/v1/tokens', body)
      expect(res.status, JSON.stringify(res.body)).toBe(201)
      return res.body as { id: string; token: string }
    }
    const byKey = await mint({ workflow_ids: [wf.body.id] })
    const byId = await mint({ workflow_ids: [wf.body.id] })
    const trigger = await mint({ scope: 'trigger', workflow_id: wf.body.id, max_runs: 100 })
    // Process 1 has verified them (and cached the key and the tenant's revocations).
    for (const tok of [byKey, byId]) expect((await api(cluster.url(1), tok.token).get('/v1/me')).status).toBe(200)
    expect((await api(cluster.url(1), trigger.token).post(`/v1/workflows/${wf.body.id}/runs`, {})).status).toBe(202)

    const waitRefused = async (probe: () => Promise<number>) => {
      const started = Date.now()
      let status = 200
      while (status < 300 && Date.now() - started < 10_000) {
        status = await probe()
        if (status < 300) await new Promise((r) => setTimeout(r, 20))
      }
      expect(status).toBe(401)
      return Date.now() - started
    }
    expect((await client(0).post(`/v1/tokens/${byId.id}/revoke`, {})).status).toBe(200)
    const tookById = await waitRefused(async () => (await api(cluster.url(1), byId.token).get('/v1/me')).status)
    expect(tookById, `process 1 still accepted the revoked token for ${tookById} ms`).toBeLessThan(PROPAGATION_LIMIT_MS)
    expect((await api(cluster.url(1), byKey.token).get('/v1/me')).status).toBe(200)

    expect((await client(0).delete(`/v1/keys/${minter.body.id}`)).status).toBe(200)
    const tookByKey = await waitRefused(async () => (await api(cluster.url(1), byKey.token).get('/v1/me')).status)
    expect(tookByKey, `process 1 still accepted a token of the revoked key for ${tookByKey} ms`).toBeLessThan(PROPAGATION_LIMIT_MS)
    const tookTrigger = await waitRefused(async () => (await api(cluster.url(1), trigger.token).post(`/v1/workflows/${wf.body.id}/runs`, {})).status)
    expect(tookTrigger).toBeLessThan(PROPAGATION_LIMIT_MS)
  }, 60_000)
})
