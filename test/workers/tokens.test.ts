/**
 * Subscriber tokens over Workers sockets: the run and feed objects verify a refreshed token
 * themselves (same tenant, same scope) and move the socket's expiry, which lives in the socket
 * attachment; an expired token closes the socket with 4001, and so does a revoked one (checked at
 * each heartbeat, the token's identity kept in the attachment). And the 101 selects runrelay.v1.
 */
import { env, evictDurableObject, SELF } from 'cloudflare:test'
import { describe, expect, it } from 'vitest'
import { BASE, call, openSse, openWs, running, setupTenant, trigger, until } from './helpers.ts'

const UNAUTHORIZED = 4001
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

async function mint(key: string, body: Record<string, unknown>): Promise<{ token: string; expiresAt: number; id: string }> {
  const res = await call('POST', '/v1/tokens', key, body)
  if (res.status !== 201) throw new Error(`token: ${res.status} ${JSON.stringify(res.body)}`)
  return { token: res.body.token, expiresAt: Date.parse(res.body.expires_at), id: res.body.id }
}

function closedWithin(sub: { closed: Promise<{ code: number; reason: string }> }, ms: number, what: string) {
  return Promise.race([sub.closed, sleep(ms).then(() => { throw new Error(`timed out after ${ms} ms waiting for ${what}`) })])
}

describe('runrelay on Workers: subscriber tokens over sockets', () => {
  it('refreshes a run socket\'s token: open past the first expiry, refused for another scope, 4001 at the new expiry', async () => {
    const t = await setupTenant('tok-run')
    const run = await trigger(t, running(400))
    const other = await trigger(t, running(400))
    // Long enough for the two wrong refreshes to reach the socket before it expires on a loaded machine.
    const first = await mint(t.key, { run_ids: [run.id], ttl_seconds: 5 })
    const ws = await openWs(`/v1/runs/${run.id}/stream`, first.token)
    await until(() => ws.messages.some((m) => m.type === 'caught_up'), 5_000, 'caught_up')

    // Another run's token, and an API key, are not a refresh of this socket's token.
    ws.send({ type: 'refresh_token', token: (await mint(t.key, { run_ids: [other.id], ttl_seconds: 60 })).token })
    ws.send({ type: 'refresh_token', token: t.key })
    await until(() => ws.messages.filter((m) => m.type === 'error' && m.code === 'invalid_token').length === 2, 5_000, 'two invalid_token errors')

    const second = await mint(t.key, { run_ids: [run.id], ttl_seconds: 9 })
    ws.send({ type: 'refresh_token', token: second.token })
    const refreshed = await until(() => ws.messages.find((m) => m.type === 'token_refreshed'), 5_000, 'token_refreshed')
    expect(Date.parse(refreshed.expiresAt)).toBe(second.expiresAt)

    await sleep(Math.max(0, first.expiresAt - Date.now()) + 1_200)
    expect(ws.closeInfo).toBeNull()
    const seen = ws.events.length
    await until(() => ws.events.length > seen, 5_000, 'events after the first expiry')

    const closed = await closedWithin(ws, second.expiresAt - Date.now() + 5_000, 'the close at the refreshed expiry')
    expect(closed.code).toBe(UNAUTHORIZED)
    expect(Date.now()).toBeGreaterThanOrEqual(second.expiresAt)
    await call('POST', `/v1/runs/${run.id}/cancel`, t.key, {})
    await call('POST', `/v1/runs/${other.id}/cancel`, t.key, {})
  })

  it('closes a token-scoped run socket with 4001 when the token expires', async () => {
    const t = await setupTenant('tok-expire')
    const run = await trigger(t, running(400))
    // 3 s: the upgrade must get in before the expiry even on a loaded machine (1 s did not always).
    const tok = await mint(t.key, { run_ids: [run.id], ttl_seconds: 3 })
    const ws = await openWs(`/v1/runs/${run.id}/stream`, tok.token)
    const closed = await closedWithin(ws, 10_000, 'the close at expiry')
    expect(closed.code).toBe(UNAUTHORIZED)
    expect(Date.now()).toBeGreaterThanOrEqual(tok.expiresAt)
    await call('POST', `/v1/runs/${run.id}/cancel`, t.key, {})
  })

  it('refreshes a feed socket\'s token and closes it with 4001 at the new expiry', async () => {
    const t = await setupTenant('tok-feed')
    const first = await mint(t.key, { workflow_ids: [t.workflowId], ttl_seconds: 5 })
    const ws = await openWs(`/v1/stream?workflow_id=${t.workflowId}`, first.token)
    await until(() => ws.messages.some((m) => m.type === 'caught_up'), 5_000, 'caught_up')
    ws.send({ type: 'refresh_token', token: (await mint(t.key, { tags: ['fake'], ttl_seconds: 60 })).token })
    await until(() => ws.messages.some((m) => m.type === 'error' && m.code === 'invalid_token'), 5_000, 'invalid_token')

    const second = await mint(t.key, { workflow_ids: [t.workflowId], ttl_seconds: 9 })
    ws.send({ type: 'refresh_token', token: second.token })
    await until(() => ws.messages.some((m) => m.type === 'token_refreshed'), 5_000, 'token_refreshed')
    await sleep(Math.max(0, first.expiresAt - Date.now()) + 1_200)
    expect(ws.closeInfo).toBeNull()
    const run = await trigger(t, [...running(1), { status: 'completed' }])
    await until(() => ws.events.some((e) => e.run_id === run.id && e.status === 'completed'), 10_000, 'the feed to carry a run after the first expiry')

    const closed = await closedWithin(ws, second.expiresAt - Date.now() + 5_000, 'the feed close at the refreshed expiry')
    expect(closed.code).toBe(UNAUTHORIZED)
  })

  it('selects the runrelay.v1 subprotocol on run and feed sockets', async () => {
    const t = await setupTenant('subprotocol')
    const run = await trigger(t, running(400))
    const tok = await mint(t.key, { run_ids: [run.id], ttl_seconds: 60 })
    const upgrade = (path: string, protocols: string, auth?: string) => SELF.fetch(BASE + path, {
      headers: { upgrade: 'websocket', 'sec-websocket-protocol': protocols, ...(auth ? { authorization: `Bearer ${auth}` } : {}) },
    })
    // As the SDK offers it: the token as a subprotocol, first.
    const viaToken = await upgrade(`/v1/runs/${run.id}/stream`, `runrelay.token.${tok.token}, runrelay.v1`)
    expect(viaToken.status).toBe(101)
    expect(viaToken.headers.get('sec-websocket-protocol')).toBe('runrelay.v1')
    viaToken.webSocket!.accept()
    viaToken.webSocket!.close(1000, 'bye')

    const feed = await upgrade('/v1/stream', 'runrelay.v1', t.key)
    expect(feed.status).toBe(101)
    expect(feed.headers.get('sec-websocket-protocol')).toBe('runrelay.v1')
    feed.webSocket!.accept()
    feed.webSocket!.close(1000, 'bye')

    const none = await SELF.fetch(BASE + `/v1/runs/${run.id}/stream`, { headers: { upgrade: 'websocket', authorization: `Bearer ${t.key}` } })
    expect(none.status).toBe(101)
    expect(none.headers.get('sec-websocket-protocol')).toBeNull()
    none.webSocket!.accept()
    none.webSocket!.close(1000, 'bye')
    await call('POST', `/v1/runs/${run.id}/cancel`, t.key, {})
  })

  it('trigger tokens: start runs of their workflow within the budget the database keeps, and stream exactly those runs', async () => {
    const t = await setupTenant('tok-trigger')
    const minted = await call('POST', '/v1/tokens', t.key, { scope: 'trigger', workflow_id: t.workflowId, max_runs: 2, ttl_seconds: 120 })
    expect(minted.status).toBe(201)
    const token = minted.body.token as string
    const results = await Promise.all([0, 1, 2, 3].map(() => call('POST', `/v1/workflows/${t.workflowId}/runs`, token, { variables: { script: running(2) } })))
    expect(results.map((r) => r.status).sort()).toEqual([202, 202, 403, 403])
    const runId = results.find((r) => r.status === 202)!.body.id as string
    expect((await call('GET', `/v1/runs/${runId}`, token)).status).toBe(200)
    expect((await call('POST', `/v1/runs/${runId}/cancel`, token, {})).status).toBe(401)
    const ws = await openWs(`/v1/runs/${runId}/stream`, token)
    await until(() => ws.messages.some((m) => m.type === 'caught_up'), 5_000, 'caught_up')
    expect(ws.events[0]?.run_id).toBe(runId)
    ws.close()
    const other = await trigger(t, running(1))
    expect((await call('GET', `/v1/runs/${other.id}`, token)).status).toBe(404)
  })

  it('tokens die with their key and by id, trigger tokens keep to their tags, and variables_schema holds (issue 23)', async () => {
    const t = await setupTenant('tok-revoke')
    const run = await trigger(t, running(400))
    const minter = await call('POST', '/v1/keys', t.key, { name: 'minter', scopes: ['runs:read', 'runs:write'] })
    expect(minter.status).toBe(201)
    const byKey = await call('POST', '/v1/tokens', minter.body.key, { run_ids: [run.id] })
    const byId = await call('POST', '/v1/tokens', minter.body.key, { run_ids: [run.id] })
    const read = (tok: string) => call('GET', `/v1/runs/${run.id}`, tok)
    expect((await read(byKey.body.token)).status).toBe(200)
    expect((await read(byId.body.token)).status).toBe(200)
    // A socket cannot be refreshed with a revoked token either (the objects verify with the store).
    const ws = await openWs(`/v1/runs/${run.id}/stream`, byKey.body.token)
    await until(() => ws.messages.some((m) => m.type === 'caught_up'), 5_000, 'caught_up')

    expect((await call('DELETE', `/v1/tokens/${byId.body.id}`, t.key)).status).toBe(200)
    expect((await read(byId.body.token)).status).toBe(401)
    ws.send({ type: 'refresh_token', token: byId.body.token })
    await until(() => ws.messages.find((m) => m.type === 'error' && m.code === 'invalid_token'), 5_000, 'invalid_token')
    expect((await read(byKey.body.token)).status).toBe(200)
    expect((await call('DELETE', `/v1/keys/${minter.body.id}`, t.key)).status).toBe(200)
    expect((await read(byKey.body.token)).status).toBe(401)

    // Tag confinement.
    const trig = await call('POST', '/v1/tokens', t.key, { scope: 'trigger', workflow_id: t.workflowId, max_runs: 3, run_tags: ['page:a'] })
    expect(trig.status).toBe(201)
    const foreign = await call('POST', `/v1/workflows/${t.workflowId}/runs`, trig.body.token, { variables: { script: running(1) }, tags: ['customer-42'] })
    expect(foreign.status).toBe(403)
    expect(foreign.body.error.code).toBe('tag_not_allowed')

    // variables_schema is checked in workerd (no code generation there).
    expect((await call('PATCH', `/v1/workflows/${t.workflowId}`, t.key, { variables_schema: { type: 'object', required: ['script'], properties: { script: { type: 'array', maxItems: 500 } } } })).status).toBe(200)
    const typed = await call('POST', `/v1/workflows/${t.workflowId}/runs`, trig.body.token, { variables: { script: 'nope' } })
    expect(typed.status).toBe(400)
    expect(typed.body.error.code).toBe('invalid_variables')
    expect(typed.body.error.details[0].path).toBe('body.variables.script')
    const ok = await call('POST', `/v1/workflows/${t.workflowId}/runs`, trig.body.token, { variables: { script: running(1) }, tags: ['page:a'] })
    expect(ok.status, JSON.stringify(ok.body)).toBe(202)
    expect(ok.body.tags).toContain('page:a')
    await call('PATCH', `/v1/workflows/${t.workflowId}`, t.key, { variables_schema: null })
    await call('POST', `/v1/runs/${run.id}/cancel`, t.key, {})
    ws.close()
  })

  it('closes run and feed streams (WebSocket and SSE) with 4001 "token revoked" within a heartbeat of the revocation of the token or of its key, hibernated sockets too', async () => {
    // RUNRELAY_HEARTBEAT_MS is 2 s here (wrangler.test.toml): each stream must close within one
    // period of its revocation, plus the store's read and the load of this machine.
    const HEARTBEAT_MS = 2_000
    const t = await setupTenant('tok-revoke-open')
    const run = await trigger(t, running(400))
    const minter = await call('POST', '/v1/keys', t.key, { name: 'minter', scopes: ['runs:read'] })
    expect(minter.status).toBe(201)
    const long = { ttl_seconds: 600 }
    const byId = await mint(t.key, { run_ids: [run.id], ...long })
    const keep = await mint(t.key, { run_ids: [run.id], ...long })
    const byKey = await mint(minter.body.key, { workflow_ids: [t.workflowId], ...long })
    const sseTok = await mint(t.key, { run_ids: [run.id], ...long })
    const runWs = await openWs(`/v1/runs/${run.id}/stream`, byId.token)
    const keptWs = await openWs(`/v1/runs/${run.id}/stream`, keep.token)
    const feedWs = await openWs(`/v1/stream?workflow_id=${t.workflowId}`, byKey.token)
    for (const ws of [runWs, keptWs, feedWs]) await until(() => ws.messages.some((m) => m.type === 'caught_up'), 5_000, 'caught_up')
    // The sockets hibernate and the instances go: what the check needs must be in the attachments.
    await evictDurableObject(env.RUNS.get(env.RUNS.idFromName(run.id)))
    await evictDurableObject(env.FEEDS.get(env.FEEDS.idFromName(t.tenantId)))
    // SSE cannot hibernate: opened after the evictions.
    const sse = await openSse(`/v1/runs/${run.id}/stream`, sseTok.token)
    expect(sse.status).toBe(200)
    await until(() => sse.events.length > 0, 5_000, 'SSE events')

    // A token revoked by id: its run socket closes; the other token's socket on the same run stays.
    const revokedAt = Date.now()
    expect((await call('DELETE', `/v1/tokens/${byId.id}`, t.key)).status).toBe(200)
    const closed = await closedWithin(runWs, HEARTBEAT_MS + 4_000, 'the close of the revoked token\'s socket')
    expect(closed).toEqual({ code: UNAUTHORIZED, reason: 'token revoked' })
    expect(Date.now() - revokedAt).toBeLessThan(HEARTBEAT_MS + 4_000)

    // The key that minted the feed socket's token: the feed socket closes too.
    expect((await call('DELETE', `/v1/keys/${minter.body.id}`, t.key)).status).toBe(200)
    expect(await closedWithin(feedWs, HEARTBEAT_MS + 4_000, 'the close of the feed socket')).toEqual({ code: UNAUTHORIZED, reason: 'token revoked' })

    // An SSE stream ends the same way.
    expect((await call('DELETE', `/v1/tokens/${sseTok.id}`, t.key)).status).toBe(200)
    await Promise.race([sse.done, sleep(HEARTBEAT_MS + 4_000).then(() => { throw new Error('the revoked SSE stream did not end') })])

    // Not revoked: still open, still heartbeating.
    const beats = keptWs.messages.filter((m) => m.type === 'heartbeat').length
    await until(() => keptWs.messages.filter((m) => m.type === 'heartbeat').length > beats, HEARTBEAT_MS + 4_000, 'a heartbeat on the kept socket')
    expect(keptWs.closeInfo).toBeNull()
    keptWs.close()
    await call('POST', `/v1/runs/${run.id}/cancel`, t.key, {})
  }, 40_000)
})

