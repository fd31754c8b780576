import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { genericWorkflowConfig, startGenericUpstream, type GenericUpstream } from '../fakes/generic-upstream.ts'
import { startChildServer, type ChildServer } from '../helpers/child.ts'
import { openWs } from '../helpers/clients.ts'
import { api, until } from '../helpers/server.ts'

const ROOT = 'rr_restart_root_key_0123456789'

describe('the Node process: SIGKILL, restart, SIGTERM', () => {
  let dataDir: string
  let upstream: GenericUpstream
  let child: ChildServer | undefined

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'runrelay-restart-'))
    upstream = await startGenericUpstream()
  })
  afterAll(async () => {
    child?.proc.kill('SIGKILL')
    await upstream.close()
    rmSync(dataDir, { recursive: true, force: true })
  })

  const env = () => ({ RUNRELAY_DATA_DIR: dataDir, RUNRELAY_ALLOW_PRIVATE_NETWORK: '1', RUNRELAY_HEARTBEAT_MS: '1000' })

  it('prints a generated root key once, on the first start only', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'runrelay-rootkey-'))
    try {
      const first = await startChildServer({ RUNRELAY_DATA_DIR: dir })
      const key = /root key \(shown once, keep it\): (rr_\S+)/.exec(first.output())?.[1]
      expect(key).toBeTruthy()
      expect((await api(first.url, key).get('/v1/tenants')).status).toBe(200)
      first.proc.kill('SIGTERM')
      expect(await first.exited).toBe(0)
      const second = await startChildServer({ RUNRELAY_DATA_DIR: dir })
      expect(second.output()).not.toContain('root key')
      expect((await api(second.url, key).get('/v1/tenants')).status).toBe(200)
      second.proc.kill('SIGTERM')
      await second.exited
      // Without RUNRELAY_ENCRYPTION_KEY the generated key is kept beside the database.
      expect(readdirSync(dir)).toContain('encryption.key')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('resumes every unfinished run after SIGKILL: none triggered twice, no event lost or duplicated', async () => {
    child = await startChildServer({ ...env(), RUNRELAY_ROOT_KEY: ROOT })
    const root = api(child.url, ROOT)
    const tenant = (await root.post('/v1/tenants', { name: 'crash' })).body
    const key = tenant.key.key
    let client = api(child.url, key)
    const conn = await client.post('/v1/connections', { name: 'fake', provider: 'http', base_url: upstream.url, credentials: { token: 'secret-upstream-token-xyz' } })
    expect(conn.status).toBe(201)
    const wf = await client.post('/v1/workflows', { name: 'slow', connection_id: conn.body.id, upstream_workflow_id: 'jobs', config: { ...genericWorkflowConfig, honoursIdempotencyKey: true }, input_template: { script: '{{script}}' }, poll_policy: { first_interval_ms: 100, max_interval_ms: 200 } })
    // Ten polls "running" with rising progress, then completed: long enough to be cut mid-run.
    const script = [...Array.from({ length: 10 }, (_, i) => ({ status: 'running', progress: i / 10 })), { status: 'completed', result: { done: true } }]
    const runs: string[] = []
    for (let i = 0; i < 12; i++) runs.push((await client.post(`/v1/workflows/${wf.body.id}/runs`, { variables: { script } })).body.id)
    await until(async () => upstream.jobsCreated >= 6, 10_000, 'some runs triggered')

    child.proc.kill('SIGKILL')
    await child.exited

    child = await startChildServer({ ...env(), RUNRELAY_ROOT_KEY: ROOT }, Number(new URL(child.url).port))
    expect(child.output()).toMatch(/"resumedRuns":\d+/)
    client = api(child.url, key)
    for (const id of runs) {
      await until(async () => (await client.get(`/v1/runs/${id}`)).body.status === 'completed', 30_000, `run ${id} completed`)
      const events = (await client.get(`/v1/runs/${id}/events?limit=1000`)).body.events
      expect(events.map((e: any) => e.seq)).toEqual(events.map((_: unknown, i: number) => i + 1))
      expect(events.filter((e: any) => e.type === 'run.status_changed' && e.status === 'completed').length).toBe(1)
      expect(events.filter((e: any) => e.type === 'run.created').length).toBe(1)
    }
    // One upstream job per run, even for runs whose trigger was cut by the kill: this fake honours Idempotency-Key and the
    // workflow says so, so the resend carries the same key (upstreams that do not dedupe: test/multiprocess/).
    expect(upstream.jobsCreated).toBe(12)
    const db = readFileSync(join(dataDir, 'runrelay.db'))
    expect(db.includes(Buffer.from('secret-upstream-token-xyz'))).toBe(false)
  }, 90_000)

  it('closes sockets with 1012 on SIGTERM and exits cleanly', async () => {
    child ??= await startChildServer({ ...env(), RUNRELAY_ROOT_KEY: ROOT })
    const root = api(child.url, ROOT)
    const key = (await root.post('/v1/tenants', { name: 'term' })).body.key.key
    const sub = openWs(child.url.replace('http', 'ws') + '/v1/stream', { authorization: `Bearer ${key}` })
    await sub.opened
    child.proc.kill('SIGTERM')
    const closed = await sub.closed
    expect(closed.code).toBe(1012)
    expect(await child.exited).toBe(0)
    child = undefined
  })
})

describe('outbound URL guard without RUNRELAY_ALLOW_PRIVATE_NETWORK', () => {
  it('refuses connections whose base URL is loopback, private or metadata', async () => {
    const { startTestServer, createTenant } = await import('../helpers/server.ts')
    const server = await startTestServer({ RUNRELAY_ALLOW_PRIVATE_NETWORK: '0' })
    try {
      const { client } = await createTenant(server)
      for (const base_url of ['http://127.0.0.1:9/', 'http://169.254.169.254/latest', 'http://10.1.2.3/', 'http://[::1]/', 'http://localhost/', 'http://2130706433/']) {
        const res = await client.post('/v1/connections', { name: 'x', provider: 'http', base_url })
        expect(res.status, base_url).toBe(400)
        expect(res.body.error.code).toBe('outbound_url_refused')
      }
      expect((await client.get('/v1/connections')).body.items).toEqual([])
    } finally {
      await server.stop()
    }
  })
})
