import { generateKeyPair, SignJWT } from 'jose'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SecretBox } from '../../src/core/crypto.ts'
import { TOKEN_AUDIENCE, TOKEN_ISSUER, TOKEN_TYP } from '../../src/http/tokens.ts'
import { openSse, openWs } from '../helpers/clients.ts'
import { demoTenant, sleep, within } from '../helpers/live.ts'
import { startTestServer, until, type TestServer } from '../helpers/server.ts'

let server: TestServer
let t: Awaited<ReturnType<typeof demoTenant>>
let other: Awaited<ReturnType<typeof demoTenant>>
let wf1: string, wf2: string
let r1: string, r2: string, r3: string, otherRun: string

beforeAll(async () => {
  server = await startTestServer()
  t = await demoTenant(server, 'acme')
  other = await demoTenant(server, 'globex')
  wf1 = await t.workflow('reports', { durationMs: 20_000, steps: 4, queueMs: 0 })
  wf2 = await t.workflow('exports', { durationMs: 20_000, steps: 4, queueMs: 0 })
  r1 = await t.trigger(wf1, { tags: ['team:a'] })
  r2 = await t.trigger(wf1)
  r3 = await t.trigger(wf2, { tags: ['team:b'] })
  otherRun = await other.trigger(await other.workflow('theirs'))
})
afterAll(async () => { await server?.stop() })

const wsUrl = (path: string, token?: string) => `${server.wsUrl}${path}${token ? `${path.includes('?') ? '&' : '?'}token=${encodeURIComponent(token)}` : ''}`

/** The HTTP status a WebSocket upgrade is refused with (0 when it opened). */
async function wsStatus(path: string, token: string): Promise<number> {
  const c = openWs(wsUrl(path, token))
  try {
    await within(c.opened, 5_000, 'ws open')
    c.close()
    return 0
  } catch (err) {
    return (err as { status?: number }).status ?? -1
  }
}

/** The signing key, from the server's encryption key, to craft tokens signed with other algorithms. */
async function signingKey(): Promise<Uint8Array> {
  const box = await SecretBox.fromKey(readFileSync(join(server.dataDir, 'encryption.key'), 'utf8'))
  return box.deriveKey('subscriber-token/v1')
}
const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url')
const validClaims = (runId: string) => ({ sub: t.tenantId, scope: { r: [runId] }, jti: 'tok_crafted', iss: TOKEN_ISSUER, aud: TOKEN_AUDIENCE, iat: Math.floor(Date.now() / 1000), exp: Math.floor(Date.now() / 1000) + 600 })

describe('POST /v1/tokens', () => {
  it('mints a 15-minute read-only token by default', async () => {
    const res = await t.client.post('/v1/tokens', { run_ids: [r1] })
    expect(res.status).toBe(201)
    expect(res.body.token_type).toBe('Bearer')
    expect(res.body.expires_in).toBeGreaterThan(895)
    expect(res.body.expires_in).toBeLessThanOrEqual(900)
    expect(res.body.scope).toEqual({ run_ids: [r1], workflow_ids: [], tags: [] })
    const [header] = res.body.token.split('.')
    expect(JSON.parse(Buffer.from(header, 'base64url').toString())).toEqual({ alg: 'HS256', typ: TOKEN_TYP })
  })

  it('validates scope, ownership, ttl and who asks', async () => {
    expect((await t.client.post('/v1/tokens', {})).status).toBe(400)
    expect((await t.client.post('/v1/tokens', { run_ids: [] })).status).toBe(400)
    expect((await t.client.post('/v1/tokens', { tags: ['x'], ttl_seconds: 86_401 })).status).toBe(400)
    expect((await t.client.post('/v1/tokens', { tags: ['x'], ttl_seconds: 86_400 })).status).toBe(201)
    expect((await t.client.post('/v1/tokens', { run_ids: [otherRun] })).status).toBe(404)
    expect((await t.client.post('/v1/tokens', { workflow_ids: ['wf_nope'] })).status).toBe(404)
    expect((await t.client.post('/v1/tokens', { tags: ['x'], admin: true })).status).toBe(400)
    // A token cannot mint tokens; the root key manages tenants only; a key without runs:read is refused.
    const token = await t.mint({ run_ids: [r1] })
    expect((await t.api(token).post('/v1/tokens', { run_ids: [r1] })).status).toBe(401)
    expect((await t.api(server.rootKey).post('/v1/tokens', { run_ids: [r1] })).status).toBe(403)
    const writer = await t.client.post('/v1/keys', { name: 'writer', scopes: ['workflows:read'] })
    expect((await t.api(writer.body.key).post('/v1/tokens', { run_ids: [r1] })).status).toBe(403)
  })
})

describe('scope matrix', () => {
  it('a run-scoped token sees its run only, read-only', async () => {
    const token = await t.mint({ run_ids: [r1] })
    const c = t.api(token)
    expect((await c.get(`/v1/runs/${r1}`)).status).toBe(200)
    expect((await c.get(`/v1/runs/${r1}/events`)).status).toBe(200)
    expect((await c.get(`/v1/runs/${r2}`)).status).toBe(404)
    expect((await c.get(`/v1/runs/${otherRun}`)).status).toBe(404)
    expect((await c.get('/v1/runs')).status).toBe(401) // the list route does not take tokens
    expect((await c.get('/v1/workflows')).status).toBe(401)
    expect((await c.post(`/v1/runs/${r1}/cancel`, {})).status).toBe(401)
    expect((await c.post(`/v1/workflows/${wf1}/runs`, {})).status).toBe(403) // trigger routes take trigger tokens only
    expect(await wsStatus(`/v1/runs/${r1}/stream`, token)).toBe(0)
    expect(await wsStatus(`/v1/runs/${r2}/stream`, token)).toBe(404)
    expect(await wsStatus(`/v1/runs/${otherRun}/stream`, token)).toBe(404)
  })

  it('a run-scoped token streams its run over WebSocket (query and subprotocol) and SSE', async () => {
    const token = await t.mint({ run_ids: [r1] })
    const q = openWs(wsUrl(`/v1/runs/${r1}/stream`, token))
    await within(q.opened, 5_000, 'ws open')
    await until(() => q.messages.find((m) => m.type === 'caught_up'), 5_000, 'caught_up')
    expect(q.messages[0]).toMatchObject({ type: 'hello', stream: 'run', run_id: r1 })
    expect(q.events.length).toBeGreaterThan(0)
    expect(q.events.every((e) => e.run_id === r1)).toBe(true)
    q.close()

    // Browsers cannot set headers: the token rides as a subprotocol and the server selects the plain one.
    const p = openWs(`${server.wsUrl}/v1/runs/${r1}/stream`, {}, ['runrelay.v1', `runrelay.token.${token}`])
    await within(p.opened, 5_000, 'ws open (subprotocol)')
    expect(p.ws.protocol).toBe('runrelay.v1')
    await until(() => p.messages.find((m) => m.type === 'caught_up'), 5_000, 'caught_up')
    p.close()
    const bad = openWs(`${server.wsUrl}/v1/runs/${r2}/stream`, {}, ['runrelay.v1', `runrelay.token.${token}`])
    await expect(within(bad.opened, 5_000)).rejects.toMatchObject({ status: 404 })

    const sse = openSse(`${server.url}/v1/runs/${r1}/events?token=${token}`)
    await until(() => sse.events.length > 0, 5_000, 'sse events')
    expect(sse.status).toBe(200)
    expect(JSON.parse(sse.events[0]!.data).run_id).toBe(r1)
    sse.close()
    const sse2 = openSse(`${server.url}/v1/runs/${r2}/events?token=${token}`)
    await within(sse2.done, 5_000, 'sse refusal')
    expect(sse2.status).toBe(404)
  })

  it('a run-scoped token on the feed sees only its run', async () => {
    const token = await t.mint({ run_ids: [r1] })
    const feed = openWs(wsUrl('/v1/stream?after=0', token))
    await within(feed.opened, 5_000, 'feed open')
    await until(() => feed.messages.find((m) => m.type === 'caught_up'), 5_000, 'caught_up')
    expect(feed.events.length).toBeGreaterThan(0)
    expect(new Set(feed.events.map((e) => e.run_id))).toEqual(new Set([r1]))
    feed.close()
  })

  it('a workflow-scoped token sees that workflow\'s runs and feed', async () => {
    const token = await t.mint({ workflow_ids: [wf1] })
    const c = t.api(token)
    expect((await c.get(`/v1/runs/${r1}`)).status).toBe(200)
    expect((await c.get(`/v1/runs/${r2}`)).status).toBe(200)
    expect((await c.get(`/v1/runs/${r3}`)).status).toBe(404)
    expect(await wsStatus(`/v1/runs/${r2}/stream`, token)).toBe(0)
    expect(await wsStatus(`/v1/runs/${r3}/stream`, token)).toBe(404)
    const sse = openSse(`${server.url}/v1/stream?after=0&token=${token}`)
    await until(() => sse.events.length >= 2, 5_000, 'feed events')
    sse.close()
    expect(new Set(sse.events.map((e) => JSON.parse(e.data).workflow_id))).toEqual(new Set([wf1]))
    // Asking the feed for a workflow outside the scope is refused, not silently widened.
    expect(await wsStatus(`/v1/stream?workflow_id=${wf2}`, token)).toBe(403)
  })

  it('a tag-scoped token sees runs with the tag', async () => {
    const token = await t.mint({ tags: ['team:b'] })
    const c = t.api(token)
    expect((await c.get(`/v1/runs/${r3}`)).status).toBe(200)
    expect((await c.get(`/v1/runs/${r1}`)).status).toBe(404)
    expect(await wsStatus(`/v1/runs/${r3}/stream`, token)).toBe(0)
    expect(await wsStatus(`/v1/runs/${r1}/stream`, token)).toBe(404)
    const feed = openWs(wsUrl('/v1/stream?after=0', token))
    await until(() => feed.messages.find((m) => m.type === 'caught_up'), 5_000, 'caught_up')
    feed.close()
    expect(new Set(feed.events.map((e) => e.run_id))).toEqual(new Set([r3]))
  })
})

describe('refused tokens', () => {
  it('refuses tampered, unsigned, wrong-algorithm, foreign-key and expired tokens', async () => {
    const good = await t.mint({ run_ids: [r1] })
    const [h, p, s] = good.split('.')
    const claims = JSON.parse(Buffer.from(p!, 'base64url').toString())
    const key = await signingKey()
    const rsa = await generateKeyPair('RS256')
    const past = Math.floor(Date.now() / 1000) - 60
    const bad: Record<string, string> = {
      tampered: `${h}.${b64({ ...claims, scope: { r: [r2] } })}.${s}`,
      'tampered signature': `${h}.${p}.${s!.slice(0, -2)}${s!.endsWith('AA') ? 'BB' : 'AA'}`,
      'alg none': `${b64({ alg: 'none', typ: TOKEN_TYP })}.${b64(validClaims(r1))}.`,
      HS512: await new SignJWT(validClaims(r1)).setProtectedHeader({ alg: 'HS512', typ: TOKEN_TYP }).sign(key),
      RS256: await new SignJWT(validClaims(r1)).setProtectedHeader({ alg: 'RS256', typ: TOKEN_TYP }).sign(rsa.privateKey),
      'other key': await new SignJWT(validClaims(r1)).setProtectedHeader({ alg: 'HS256', typ: TOKEN_TYP }).sign(new Uint8Array(32).fill(7)),
      'wrong typ': await new SignJWT(validClaims(r1)).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).sign(key),
      'wrong audience': await new SignJWT({ ...validClaims(r1), aud: 'something-else' }).setProtectedHeader({ alg: 'HS256', typ: TOKEN_TYP }).sign(key),
      'crafted expired': await new SignJWT({ ...validClaims(r1), iat: past - 600, exp: past }).setProtectedHeader({ alg: 'HS256', typ: TOKEN_TYP }).sign(key),
      garbage: 'not-a-token',
    }
    // The control: the same crafting with the right algorithm and key is accepted.
    const control = await new SignJWT(validClaims(r1)).setProtectedHeader({ alg: 'HS256', typ: TOKEN_TYP }).sign(key)
    expect((await t.api(control).get(`/v1/runs/${r1}`)).status).toBe(200)
    for (const [name, token] of Object.entries(bad)) {
      expect({ name, status: (await t.api(token).get(`/v1/runs/${r1}`)).status }).toEqual({ name, status: 401 })
      expect({ name, ws: await wsStatus(`/v1/runs/${r1}/stream`, token) }).toEqual({ name, ws: 401 })
      const sse = openSse(`${server.url}/v1/runs/${r1}/events?token=${encodeURIComponent(token)}`)
      await within(sse.done, 5_000, 'sse refusal')
      expect({ name, sse: sse.status }).toEqual({ name, sse: 401 })
    }
  })

  it('an expired token is refused, and an open socket is closed with 4001 when it expires', async () => {
    const short = await t.mint({ run_ids: [r1], ttl_seconds: 2 })
    const ws = openWs(wsUrl(`/v1/runs/${r1}/stream`, short))
    await within(ws.opened, 5_000, 'ws open')
    const sse = openSse(`${server.url}/v1/runs/${r1}/events?token=${short}`)
    const closed = await within(ws.closed, 5_000, 'expiry close')
    expect(closed.code).toBe(4001)
    await within(sse.done, 5_000, 'sse ends at expiry')
    await until(async () => (await t.api(short).get(`/v1/runs/${r1}`)).status === 401, 3_000, 'token refused after expiry')
    expect(await wsStatus(`/v1/runs/${r1}/stream`, short)).toBe(401)
  })

  it('a refresh over the socket keeps it open past the first expiry', async () => {
    const short = await t.mint({ run_ids: [r1], ttl_seconds: 2 })
    const ws = openWs(wsUrl(`/v1/runs/${r1}/stream`, short))
    await within(ws.opened, 5_000, 'ws open')
    // A token of another scope, or garbage, does not refresh this socket.
    ws.send({ type: 'refresh_token', token: await t.mint({ run_ids: [r2], ttl_seconds: 60 }) })
    ws.send({ type: 'refresh_token', token: 'garbage' })
    await until(() => ws.messages.filter((m) => m.type === 'error' && m.code === 'invalid_token').length === 2, 3_000, 'refusals')
    await sleep(800)
    ws.send({ type: 'refresh_token', token: await t.mint({ run_ids: [r1], ttl_seconds: 60 }) })
    const refreshed = await until(() => ws.messages.find((m) => m.type === 'token_refreshed'), 3_000, 'token_refreshed')
    expect(Date.parse(refreshed.expiresAt)).toBeGreaterThan(Date.now() + 50_000)
    await sleep(2_500) // past the first token's expiry
    expect(ws.closeInfo).toBeNull()
    const heartbeats = ws.messages.filter((m) => m.type === 'heartbeat').length
    await until(() => ws.messages.filter((m) => m.type === 'heartbeat').length > heartbeats, 3_000, 'heartbeat after expiry')
    ws.close()
  })
})
