/**
 * Nobody gets in: tenant isolation and scopes over every documented route (driven by
 * /openapi.json, so new routes are covered), subscriber tokens, secrets at rest and in
 * logs, the outbound URL guard (API and fetch time), per-key rate limits, request limits.
 */
import { createClient } from '@libsql/client'
import { drizzle } from 'drizzle-orm/libsql'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { parseConfig } from '../../src/config.ts'
import { newEncryptionKey, SecretBox } from '../../src/core/crypto.ts'
import { schema, Store } from '../../src/db/store.ts'
import { createLocalRuntime } from '../../src/runtime/local/runtime.ts'
import { genericWorkflowConfig, startGenericUpstream, type GenericUpstream } from '../fakes/generic-upstream.ts'
import { openWs } from '../helpers/clients.ts'
import { sleep } from '../helpers/live.ts'
import { api, createTenant, startTestServer, until, type TestServer } from '../helpers/server.ts'
import { recordFigures } from './figures.ts'

const SECRET = 'sk-live-SUPER-SECRET-credential-4242'
const SCOPES = ['workflows:read', 'workflows:write', 'runs:read', 'runs:write', 'admin']
type Op = { method: string; path: string; scope: string | null }

describe('reliability: security', () => {
  let server: TestServer
  let upstream: GenericUpstream
  const figures: Record<string, unknown> = {}
  const logs: string[] = []
  const responses: string[] = []
  let A: Awaited<ReturnType<typeof createTenant>>
  let B: Awaited<ReturnType<typeof createTenant>>
  const ids: Record<string, string> = {}
  let ops: Op[] = []

  /** A JSON call that keeps every answer (checked for leaked secrets at the end). */
  const call = async (key: string | undefined, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
    const res = await api(server.url, key).raw(method, path, body, headers)
    responses.push(JSON.stringify(res.body))
    return res
  }
  const fill = (path: string) => path.replace(/\{(\w+)\}/g, (_, name) => {
    if (name === 'keyId') return ids.key!
    const seg = path.split('/')[2]! // /v1/<collection>/{id}
    if (path.startsWith('/v1/tenants/')) return ids.tenant!
    return ids[seg] ?? 'zz_no_such_object'
  })
  /** Bodies that pass validation, so the answer is about the object, not the body. */
  const bodyFor = (op: Op): unknown => {
    if (op.method === 'get' || op.method === 'delete') return undefined
    if (/\/input$/.test(op.path)) return { data: 1 }
    if (op.method === 'patch') return { name: 'renamed' }
    if (/\/keys$/.test(op.path)) return { name: 'k' }
    return {}
  }

  beforeAll(async () => {
    const spy = vi.spyOn(console, 'error').mockImplementation((...args) => { logs.push(args.map(String).join(' ')) })
    void spy
    upstream = await startGenericUpstream({ defaultScript: [{ status: 'running' }] })
    server = await startTestServer({ RUNRELAY_LOG: 'debug', RUNRELAY_RATE_LIMIT_PER_MINUTE: '0' })
    A = await createTenant(server, 'tenant-a')
    B = await createTenant(server, 'tenant-b')
    const conn = await call(A.key, 'POST', '/v1/connections', { name: 'secret', provider: 'http', base_url: upstream.url, config: { auth: { type: 'header', header: 'Authorization', scheme: 'Bearer' } }, credentials: { token: SECRET } })
    expect(conn.status).toBe(201)
    ids.connections = conn.body.id
    const wf = await call(A.key, 'POST', '/v1/workflows', { name: 'wf', connection_id: conn.body.id, upstream_workflow_id: 'jobs', config: genericWorkflowConfig, tags: ['a-tag'], poll_policy: { first_interval_ms: 200, max_interval_ms: 500 } })
    ids.workflows = wf.body.id
    const run = await call(A.key, 'POST', `/v1/workflows/${wf.body.id}/runs`, { variables: { script: null } })
    expect(run.status).toBe(202)
    ids.runs = run.body.id
    ids.keys = ids.key = (await call(A.key, 'POST', '/v1/keys', { name: 'extra', scopes: ['runs:read'] })).body.id
    ids.tenant = A.tenantId
    await until(async () => (await call(A.key, 'GET', `/v1/runs/${ids.runs}`)).body.upstream_id, 10_000, 'run triggered')
    // Objects of routes added by others (schedules, webhooks…): the first one tenant A lists, if any.
    const spec = (await call(undefined, 'GET', '/openapi.json')).body
    for (const [path, methods] of Object.entries<any>(spec.paths)) {
      for (const [method, op] of Object.entries<any>(methods)) ops.push({ method, path, scope: op['x-runrelay-scope'] ?? null })
    }
    for (const coll of new Set(ops.map((o) => o.path.split('/')[2]!).filter((c) => c && !ids[c]))) {
      const res = await call(A.key, 'GET', `/v1/${coll}`)
      if (res.status === 200 && res.body?.items?.[0]?.id) ids[coll] = res.body.items[0].id
    }
  }, 30_000)
  afterAll(async () => {
    vi.restoreAllMocks()
    await server?.stop()
    await upstream?.close()
    recordFigures('security', figures)
  })

  it('tenant isolation: every route with another tenant\'s key answers 404 for objects and leaks nothing in lists', async () => {
    const tenantOps = ops.filter((o) => o.scope && !['root', 'none', 'signature'].includes(o.scope))
    expect(tenantOps.length).toBeGreaterThan(20)
    const aIds = Object.entries(ids).filter(([k]) => k !== 'tenant').map(([, v]) => v)
    let objectRoutes = 0, listRoutes = 0, notFound = 0
    const uncovered: string[] = []
    for (const op of tenantOps) {
      const path = fill(op.path)
      if (path.includes('zz_no_such_object')) { uncovered.push(`${op.method} ${op.path}`); continue }
      const res = await call(B.key, op.method.toUpperCase(), path, bodyFor(op))
      const text = JSON.stringify(res.body)
      for (const id of aIds) expect(text, `${op.method} ${op.path} leaks ${id}`).not.toContain(id)
      if (op.path.includes('{')) {
        objectRoutes++
        // Another tenant's object is "not found", exactly as an id that does not exist (no oracle).
        // A body the route refuses (400) is refused the same way before any lookup.
        const missing = await call(B.key, op.method.toUpperCase(), op.path.replace(/\{\w+\}/g, 'zz_missing_0'), bodyFor(op))
        expect(res.status, `${op.method} ${op.path} → ${res.status} ${text}`).toBe(missing.status)
        expect([400, 404], `${op.method} ${op.path} → ${res.status} ${text}`).toContain(res.status)
        if (res.status === 404) notFound++
      } else {
        listRoutes++
        expect(res.status, `${op.method} ${op.path}`).toBeLessThan(500)
      }
    }
    // Streams: B's feed never carries A's events; A's run stream is refused to B.
    const feed = openWs(`${server.wsUrl}/v1/stream?after=0`, { authorization: `Bearer ${B.key}` })
    await feed.opened
    await call(A.key, 'POST', `/v1/runs/${ids.runs}/input`, { data: 1 }).catch(() => {})
    await call(A.key, 'POST', `/v1/workflows/${ids.workflows}/runs`, { variables: { script: null } })
    await sleep(500)
    expect(feed.events.filter((e) => aIds.includes(e.run_id) || e.workflow_id === ids.workflows)).toEqual([])
    feed.close()
    const runWs = openWs(`${server.wsUrl}/v1/runs/${ids.runs}/stream`, { authorization: `Bearer ${B.key}` })
    await runWs.opened.catch(() => {})
    expect(runWs.unexpected?.status).toBe(404)
    figures.isolation = { routes_in_openapi: ops.length, tenant_routes: tenantOps.length, object_routes: objectRoutes, object_routes_404: notFound, list_routes_no_leak: listRoutes, uncovered }
  }, 60_000)

  it('scopes: every route with a key lacking its scope answers 403', async () => {
    let checked = 0
    const keys = new Map<string, string>()
    for (const scope of SCOPES) {
      const others = SCOPES.filter((s) => s !== scope && s !== 'admin')
      keys.set(scope, (await call(A.key, 'POST', '/v1/keys', { name: `no-${scope}`, scopes: others })).body.key)
    }
    for (const op of ops.filter((o) => o.scope && SCOPES.includes(o.scope))) {
      const res = await call(keys.get(op.scope!)!, op.method.toUpperCase(), fill(op.path), bodyFor(op))
      expect(res.status, `${op.method} ${op.path} without ${op.scope}`).toBe(403)
      checked++
    }
    // Root-only routes refuse tenant keys; tenant routes refuse the root key.
    for (const op of ops.filter((o) => o.scope === 'root')) expect((await call(A.key, op.method.toUpperCase(), fill(op.path), bodyFor(op))).status).toBe(403)
    expect((await call(server.rootKey, 'GET', '/v1/runs')).status).toBe(403)
    figures.scopes = { routes_checked: checked, root_only_routes: ops.filter((o) => o.scope === 'root').length }
  }, 60_000)

  it('subscriber tokens: expired, tampered, wrong algorithm, wrong scope are refused', async () => {
    const mint = async (body: unknown) => (await call(A.key, 'POST', '/v1/tokens', body)).body.token as string
    const good = await mint({ run_ids: [ids.runs] })
    expect((await call(good, 'GET', `/v1/runs/${ids.runs}`)).status).toBe(200)
    const [h, p, s] = good.split('.')
    const payload = JSON.parse(Buffer.from(p!, 'base64url').toString())
    const forged = (claims: unknown, header: unknown = JSON.parse(Buffer.from(h!, 'base64url').toString()), sig = s) =>
      `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${sig}`
    const refused: Record<string, number> = {}
    const expired = await mint({ run_ids: [ids.runs], ttl_seconds: 1 })
    await sleep(2_100)
    const cases: Record<string, string> = {
      expired,
      tampered_scope: forged({ ...payload, sub: B.tenantId }),
      tampered_signature: `${h}.${p}.${s!.slice(0, -2)}${s!.endsWith('AA') ? 'BB' : 'AA'}`,
      alg_none: forged(payload, { alg: 'none', typ: 'runrelay-sub+jwt' }, ''),
      alg_hs512: forged(payload, { alg: 'HS512', typ: 'runrelay-sub+jwt' }),
      garbage: 'not.a.token',
    }
    for (const [name, tok] of Object.entries(cases)) {
      const res = await call(tok, 'GET', `/v1/runs/${ids.runs}`)
      expect(res.status, name).toBe(401)
      refused[name] = res.status
    }
    // A valid token outside its scope: another run is not found; writes and lists are refused.
    const other = (await call(A.key, 'POST', `/v1/workflows/${ids.workflows}/runs`, { variables: { script: null } })).body.id
    refused.other_run = (await call(good, 'GET', `/v1/runs/${other}`)).status
    expect(refused.other_run).toBe(404)
    refused.write = (await call(good, 'POST', `/v1/runs/${ids.runs}/cancel`, {})).status
    expect([401, 403]).toContain(refused.write)
    refused.list = (await call(good, 'GET', '/v1/runs')).status
    expect([401, 403]).toContain(refused.list)
    figures.tokens = refused
  }, 30_000)

  it('secrets: an upstream that echoes the credential back has it replaced in the result, the raw answer and the events', async () => {
    const run = await call(A.key, 'POST', `/v1/workflows/${ids.workflows}/runs`, { variables: { script: [{ status: 'running' }, { status: 'completed', result: { ok: true }, echoAuth: true }] } })
    expect(run.status).toBe(202)
    const done = await until(async () => { const r = await call(A.key, 'GET', `/v1/runs/${run.body.id}`); return r.body.status === 'completed' && r.body }, 15_000, 'run completed')
    // What the fake vendor sent back held "Bearer <secret>" three times (result.seen, result.link encoded, message).
    expect(done.result.ok).toBe(true)
    expect(done.result.seen).toBe('Bearer REDACTED')
    expect(done.result.link).toBe('https://files.example/report?access=Bearer%20REDACTED')
    const events = await call(A.key, 'GET', `/v1/runs/${run.body.id}/events`)
    expect(JSON.stringify(events.body)).toContain('REDACTED')
    expect(JSON.stringify(events.body)).not.toContain(SECRET)
    expect(JSON.stringify(done)).not.toContain(SECRET)
  })

  it('secrets: none in clear in the database, API keys stored hashed, none in any answer or log line', async () => {
    const files = readdirSync(server.dataDir).filter((f) => f.startsWith('runrelay.db'))
    const db = Buffer.concat(files.map((f) => readFileSync(join(server.dataDir, f))))
    for (const secret of [SECRET, A.key, B.key, server.rootKey]) expect(db.includes(Buffer.from(secret)), 'in the database').toBe(false)
    const all = responses.join('\n')
    expect(all).not.toContain(SECRET)
    // Keys appear in the answers that created them only (shown once); never in any log line.
    const logText = logs.join('\n')
    for (const secret of [SECRET, A.key, B.key, server.rootKey]) expect(logText).not.toContain(secret)
    // The upstream got the credential (it works) though it is never shown.
    expect(upstream.requests).toBeGreaterThan(0)
    figures.secrets = { db_files_scanned: files.length, db_bytes: db.length, responses_scanned: responses.length, log_lines_scanned: logs.length }
  })

  it('per-key rate limit: 429 with Retry-After, other keys unaffected', async () => {
    const limited = await startTestServer({ RUNRELAY_RATE_LIMIT_PER_MINUTE: '60' })
    try {
      const t1 = await createTenant(limited, 'r1')
      const t2 = await createTenant(limited, 'r2')
      let ok = 0
      let first429: any = null
      for (let i = 0; i < 80 && !first429; i++) {
        const res = await t1.client.get('/v1/workflows')
        if (res.status === 200) ok++
        else if (res.status === 429) first429 = res
      }
      expect(first429).not.toBeNull()
      expect(Number(first429.headers.get('retry-after'))).toBeGreaterThanOrEqual(1)
      expect(first429.body.error.code).toBe('rate_limited')
      expect((await t2.client.get('/v1/workflows')).status).toBe(200)
      figures.rate_limit = { limit_per_minute: 60, allowed_before_429: ok, retry_after_s: Number(first429.headers.get('retry-after')) }
    } finally {
      await limited.stop()
    }
  })

  it('request limits: 413 body, 414 URL, 431 headers, slow-loris headers time out', async () => {
    const big = await call(A.key, 'POST', '/v1/connections', 'x'.repeat(2 * 1024 * 1024), { 'content-type': 'application/json' })
    expect(big.status).toBe(413)
    const longUrl = await call(A.key, 'GET', `/v1/runs?tag=${'a'.repeat(9000)}`)
    expect(longUrl.status).toBe(414)
    const bigHeader = await fetch(`${server.url}/v1/runs`, { headers: { authorization: `Bearer ${A.key}`, 'x-pad': 'p'.repeat(20_000) } })
    expect(bigHeader.status).toBe(431)
    const slow = await startTestServer({ RUNRELAY_HEADERS_TIMEOUT_MS: '1000' })
    try {
      const port = Number(new URL(slow.url).port)
      const t0 = Date.now()
      const outcome = await new Promise<{ ms: number; answer: string }>((resolve) => {
        const sock = connect(port, '127.0.0.1')
        let answer = ''
        sock.on('data', (d) => (answer += d))
        sock.on('close', () => { clearInterval(trickle); resolve({ ms: Date.now() - t0, answer }) })
        sock.on('error', () => {})
        sock.write('GET /healthz HTTP/1.1\r\nHost: x\r\n')
        // One header byte every 200 ms: never finishes the headers.
        const trickle = setInterval(() => { if (!sock.destroyed) sock.write('X-A: b\r\n') }, 200)
      })
      expect(outcome.ms).toBeLessThan(5_000)
      expect(outcome.answer === '' || outcome.answer.startsWith('HTTP/1.1 408')).toBe(true)
      figures.limits = { body_413: big.status, url_414: longUrl.status, headers_431: bigHeader.status, slowloris_cut_after_ms: outcome.ms, slowloris_answer: outcome.answer.split('\r\n')[0] || '(closed)' }
    } finally {
      await slow.stop()
    }
  }, 30_000)
})

describe('reliability: outbound URL guard', () => {
  const CORPUS = [
    'http://127.0.0.1/', 'http://127.1/', 'http://0.0.0.0/', 'http://10.0.0.1/', 'http://10.255.255.255/', 'http://172.16.0.1/', 'http://172.31.255.254/',
    'http://192.168.1.1/', 'http://169.254.169.254/latest/meta-data/', 'http://[::1]/', 'http://[::ffff:127.0.0.1]/', 'http://[::ffff:7f00:1]/',
    'http://[fc00::1]/', 'http://[fd12:3456::1]/', 'http://[fe80::1]/', 'http://2130706433/', 'http://0177.0.0.1/', 'http://0x7f.0.0.1/', 'http://017700000001/',
    'http://localhost/', 'http://localhost./', 'http://foo.localhost/', 'http://metadata.google.internal/', 'http://intranet/',
    'http://private.example.test/', 'http://mixed.example.test/', 'http://user:pass@public.example.test/', 'file:///etc/passwd', 'gopher://public.example.test/',
  ]
  let dir: string
  let runtime: Awaited<ReturnType<typeof createLocalRuntime>>
  let upstream: GenericUpstream
  let privateTarget: Server
  let privateHits = 0
  let redirector: Server
  const figures: Record<string, unknown> = {}
  const dns: Record<string, string[]> = {
    'public.example.test': ['93.184.216.34'], 'redirect.example.test': ['93.184.216.35'],
    'private.example.test': ['10.1.2.3'], 'mixed.example.test': ['93.184.216.34', '192.168.0.10'], 'rebind.example.test': ['93.184.216.36'],
  }
  const rootKey = 'rr_guard_root_key_0123456789abcdef'

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'runrelay-guard-'))
    upstream = await startGenericUpstream()
    privateTarget = createServer((_q, s) => { privateHits++; s.end('{}') })
    await new Promise<void>((r) => privateTarget.listen(0, '127.0.0.1', r))
    const privatePort = (privateTarget.address() as any).port
    // A public-looking upstream that redirects every request into the private network.
    redirector = createServer((_q, s) => { s.writeHead(302, { location: `http://127.0.0.1:${privatePort}/jobs` }); s.end() })
    await new Promise<void>((r) => redirector.listen(0, '127.0.0.1', r))
    const ports: Record<string, number> = {
      'public.example.test': Number(new URL(upstream.url).port), 'redirect.example.test': (redirector.address() as any).port, 'rebind.example.test': Number(new URL(upstream.url).port),
    }
    const client = createClient({ url: `file:${join(dir, 'guard.db')}` })
    runtime = await createLocalRuntime({
      store: new Store(drizzle(client, { schema })), secrets: await SecretBox.fromKey(newEncryptionKey()),
      config: parseConfig({ RUNRELAY_ROOT_KEY: rootKey, RUNRELAY_UPSTREAM_TIMEOUT_MS: '2000' }),
      upgradeWebSocket: (() => () => new Response(null, { status: 426 })) as any,
      resolveHost: async (h) => { const a = dns[h.replace(/\.$/, '')]; if (!a) throw new Error('NXDOMAIN'); return a },
      // Names are routed to loopback fakes here: the guard above this fetch sees only the names and their "public" addresses.
      fetch: (input, init) => {
        const u = new URL(String(input))
        const port = ports[u.hostname]
        if (port === undefined && u.hostname !== '127.0.0.1') return Promise.reject(new TypeError(`no route to ${u.hostname}`))
        if (port !== undefined) { u.hostname = '127.0.0.1'; u.port = String(port) }
        return fetch(u, init)
      },
    })
    await runtime.resume()
  })
  afterAll(async () => {
    await runtime?.shutdown()
    await upstream?.close()
    privateTarget?.close()
    redirector?.close()
    rmSync(dir, { recursive: true, force: true })
    recordFigures('outbound_guard', figures)
  })

  const req = (key: string, method: string, path: string, body?: unknown) =>
    runtime.app.request(path, { method, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) })

  it('refuses every private, local or disguised address through the API (connection create and update)', async () => {
    const tenant = await (await req(rootKey, 'POST', '/v1/tenants', { name: 'guard' })).json() as any
    const key = tenant.key.key
    const refused: string[] = []
    for (const base_url of CORPUS) {
      const res = await req(key, 'POST', '/v1/connections', { name: 'x', provider: 'http', base_url })
      expect(res.status, base_url).toBe(400)
      refused.push(base_url)
    }
    const ok = await req(key, 'POST', '/v1/connections', { name: 'ok', provider: 'http', base_url: 'http://public.example.test/' })
    expect(ok.status).toBe(201)
    const id = ((await ok.json()) as any).id
    for (const base_url of ['http://10.0.0.1/', 'http://private.example.test/']) expect((await req(key, 'PATCH', `/v1/connections/${id}`, { base_url })).status).toBe(400)
    const list = (await (await req(key, 'GET', '/v1/connections')).json()) as any
    expect(list.items.map((c: any) => c.base_url)).toEqual(['http://public.example.test/'])
    figures.api_refused = refused.length
  })

  it('guards at fetch time: a redirect into the private network, and a name that now resolves privately, fail the run', async () => {
    const tenant = await (await req(rootKey, 'POST', '/v1/tenants', { name: 'fetch-time' })).json() as any
    const key = tenant.key.key
    const runOn = async (host: string) => {
      const conn = (await (await req(key, 'POST', '/v1/connections', { name: host, provider: 'http', base_url: `http://${host}/` })).json()) as any
      expect(conn.id, JSON.stringify(conn)).toBeTruthy()
      const wf = (await (await req(key, 'POST', '/v1/workflows', { name: host, connection_id: conn.id, upstream_workflow_id: 'jobs', config: genericWorkflowConfig, poll_policy: { first_interval_ms: 100, max_interval_ms: 200 } })).json()) as any
      return wf.id as string
    }
    const redirectWf = await runOn('redirect.example.test')
    const rebindWf = await runOn('rebind.example.test')
    // Created while the name was public; now it resolves into the private network (DNS changed).
    dns['rebind.example.test'] = ['10.9.9.9']
    const results: Record<string, unknown> = {}
    for (const [name, wf] of [['redirect_to_loopback', redirectWf], ['name_now_private', rebindWf]] as const) {
      const run = (await (await req(key, 'POST', `/v1/workflows/${wf}/runs`, { variables: { script: null } })).json()) as any
      const final = await until(async () => { const r = (await (await req(key, 'GET', `/v1/runs/${run.id}`)).json()) as any; return r.finished_at ? r : null }, 10_000, name)
      expect(final.status, name).toBe('failed')
      expect(final.error.code, name).toBe('outbound_url_refused')
      results[name] = { status: final.status, error: final.error.code }
    }
    expect(privateHits, 'the private target was never reached').toBe(0)
    figures.fetch_time = { ...results, private_target_requests: privateHits }
  }, 30_000)
})
