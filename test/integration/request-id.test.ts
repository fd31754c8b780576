/**
 * Request ids: every answer has X-Request-Id (a sane incoming one is kept, anything else
 * replaced), error bodies carry it as `request_id`, and the server's log line of the request
 * (RUNRELAY_LOG=debug, a real child process) has the same id and no query string.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startChildServer, type ChildServer } from '../helpers/child.ts'
import { until } from '../helpers/server.ts'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const ROOT_KEY = 'rr_test_root_key_0123456789abcdef'

describe('request ids', () => {
  let server: ChildServer
  const dataDir = mkdtempSync(join(tmpdir(), 'runrelay-reqid-'))
  const logLines = () => server.output().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>)

  beforeAll(async () => {
    server = await startChildServer({ RUNRELAY_LOG: 'debug', RUNRELAY_DATA_DIR: dataDir, RUNRELAY_ROOT_KEY: ROOT_KEY })
  })
  afterAll(async () => {
    server?.proc.kill('SIGKILL')
    await server?.exited
    rmSync(dataDir, { recursive: true, force: true })
  })

  it('keeps a sane incoming id: in the header, the error body and the log line', async () => {
    const res = await fetch(`${server.url}/v1/runs/run_nope?token=secret-query-token`, { headers: { 'x-request-id': 'client-req-42' } })
    expect(res.status).toBe(401)
    expect(res.headers.get('x-request-id')).toBe('client-req-42')
    const body = await res.json() as { error: Record<string, unknown> }
    expect(body.error).toMatchObject({ code: 'unauthorized', request_id: 'client-req-42' })
    const line = await until(() => logLines().find((l) => l.request_id === 'client-req-42'), 5_000, 'the log line')
    expect(line).toMatchObject({ msg: 'request', method: 'GET', path: '/v1/runs/run_nope', status: 401 })
    expect(server.output()).not.toContain('secret-query-token')
  })

  it('replaces an unsafe or oversized incoming id, and gives every answer one', async () => {
    const ids = new Set<string>()
    for (const incoming of ['has spaces and "quotes"', 'x'.repeat(300), undefined]) {
      const res = await fetch(`${server.url}/v1/nowhere`, { headers: incoming ? { 'x-request-id': incoming } : {} })
      const id = res.headers.get('x-request-id')!
      expect(id).toMatch(/^[0-9a-f-]{36}$/)
      expect(((await res.json()) as any).error.request_id).toBe(id)
      ids.add(id)
    }
    expect(ids.size).toBe(3)
    const ok = await fetch(`${server.url}/healthz`)
    expect(ok.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/)
    const preflight = await fetch(`${server.url}/v1/runs`, { method: 'OPTIONS', headers: { origin: 'https://app.example', 'access-control-request-method': 'POST' } })
    expect(preflight.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/)
    const created = await fetch(`${server.url}/v1/tenants`, { method: 'POST', headers: { authorization: `Bearer ${ROOT_KEY}`, 'content-type': 'application/json' }, body: '{"name": 1}' })
    expect(created.status).toBe(400)
    const err = ((await created.json()) as any).error
    expect(err).toMatchObject({ code: 'validation_failed', request_id: created.headers.get('x-request-id') })
  })
})
