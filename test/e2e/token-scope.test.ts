/**
 * Tokens stay in their scope and die with their key (issue 23): revocation of the minting key,
 * of one token, of every token before a time; trigger tokens confined to their tags and their
 * pinned/allowed variables; rate limits keyed on the verified identity, /v1/me included; and
 * typed inputs (variables_schema) for keys and trigger tokens alike. A real server on loopback.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openWs } from '../helpers/clients.ts'
import { demoTenant, sleep, within } from '../helpers/live.ts'
import { api, startTestServer, until, type TestServer } from '../helpers/server.ts'

let server: TestServer
let t: Awaited<ReturnType<typeof demoTenant>>
let wf: string

beforeAll(async () => {
  server = await startTestServer()
  t = await demoTenant(server, 'scoped')
  wf = await t.workflow('reports', { durationMs: 20_000, steps: 4, queueMs: 0 })
})
afterAll(async () => { await server?.stop() })

/** A new key of the tenant with these scopes. */
async function newKey(scopes: string[]): Promise<{ id: string; key: string }> {
  const res = await t.client.post('/v1/keys', { name: `k-${scopes.join('-')}`, scopes })
  expect(res.status, JSON.stringify(res.body)).toBe(201)
  return { id: res.body.id, key: res.body.key }
}

/** Poll `status` until it is not 200, within `ms`; returns how long it took. */
async function refusedWithin(get: () => Promise<number>, ms: number): Promise<number> {
  const started = Date.now()
  let status = 200
  while (status === 200 && Date.now() - started < ms) {
    status = await get()
    if (status === 200) await sleep(20)
  }
  expect(status).toBe(401)
  return Date.now() - started
}

describe('tokens die with their key, by id, and by time', () => {
  it('a read token and a trigger token stop working once the key that minted them is revoked', async () => {
    const minter = await newKey(['runs:read', 'runs:write'])
    const run = await t.trigger(wf)
    const read = await api(server.url, minter.key).post('/v1/tokens', { run_ids: [run] })
    const trig = await api(server.url, minter.key).post('/v1/tokens', { scope: 'trigger', workflow_id: wf, max_runs: 5 })
    expect(read.status).toBe(201)
    expect(read.body.id).toMatch(/^tok_/)
    expect((await api(server.url, read.body.token).get('/v1/me')).body).toMatchObject({ kind: 'token', token_id: read.body.id, key_id: minter.id })
    const reader = api(server.url, read.body.token)
    const browser = api(server.url, trig.body.token)
    expect((await reader.get(`/v1/runs/${run}`)).status).toBe(200)
    expect((await browser.post(`/v1/workflows/${wf}/runs`, {})).status).toBe(202)
    // A token minted by another key of the tenant is not affected.
    const bystander = await t.mint({ run_ids: [run] })

    expect((await t.client.delete(`/v1/keys/${minter.id}`)).status).toBe(200)
    await refusedWithin(async () => (await reader.get(`/v1/runs/${run}`)).status, 2_000)
    expect((await browser.post(`/v1/workflows/${wf}/runs`, {})).status).toBe(401)
    expect((await reader.get('/v1/me')).status).toBe(401)
    expect((await api(server.url, bystander).get(`/v1/runs/${run}`)).status).toBe(200)
  })

  it('DELETE /v1/tokens/{id} and POST /v1/tokens/{id}/revoke revoke one token, on requests, stream opens and refreshes', async () => {
    const run = await t.trigger(wf)
    const mint = async () => (await t.client.post('/v1/tokens', { run_ids: [run], ttl_seconds: 600 })).body as { id: string; token: string }
    const a = await mint(), b = await mint(), c = await mint()
    const ws = openWs(`${server.wsUrl}/v1/runs/${run}/stream?token=${encodeURIComponent(c.token)}`)
    await within(ws.opened, 5_000, 'ws open')

    const del = await t.client.delete(`/v1/tokens/${a.id}`)
    expect(del.status).toBe(200)
    expect(del.body).toEqual({ revoked: true, id: a.id, before: null })
    expect((await api(server.url, a.token).get(`/v1/runs/${run}`)).status).toBe(401)
    expect((await api(server.url, b.token).get(`/v1/runs/${run}`)).status).toBe(200)
    expect((await t.client.post(`/v1/tokens/${b.id}/revoke`, {})).status).toBe(200)
    expect((await api(server.url, b.token).get(`/v1/runs/${run}`)).status).toBe(401)
    // A stream cannot be opened with it, and an open stream cannot be refreshed with it.
    const refused = openWs(`${server.wsUrl}/v1/runs/${run}/stream?token=${encodeURIComponent(b.token)}`)
    await expect(within(refused.opened, 5_000, 'ws open')).rejects.toMatchObject({ status: 401 })
    ws.send({ type: 'refresh_token', token: a.token })
    await until(() => ws.messages.find((m) => m.type === 'error' && m.code === 'invalid_token'), 5_000, 'invalid_token')
    // The open stream's own token revoked: it closes at the next heartbeat (1 s here), 4001 as at expiry.
    expect(ws.closeInfo).toBeNull()
    expect((await t.client.delete(`/v1/tokens/${c.id}`)).status).toBe(200)
    expect(await within(ws.closed, 5_000, 'ws closed after revocation')).toEqual({ code: 4001, reason: 'token revoked' })
    // Bad ids are a 400; a key that only reads may revoke, a token may not.
    expect((await t.client.delete('/v1/tokens/not-a-token')).status).toBe(400)
    const d = await mint()
    expect((await api(server.url, d.token).delete(`/v1/tokens/${d.id}`)).status).toBe(401)
  })

  it('POST /v1/tokens/revoke {before} refuses every token minted before it, not those minted after', async () => {
    const run = await t.trigger(wf)
    const old = (await t.client.post('/v1/tokens', { run_ids: [run] })).body.token as string
    const oldTrigger = (await t.client.post('/v1/tokens', { scope: 'trigger', workflow_id: wf })).body.token as string
    await sleep(5)
    const before = new Date().toISOString()
    await sleep(5)
    const res = await t.client.post('/v1/tokens/revoke', { before })
    expect(res.status, JSON.stringify(res.body)).toBe(200)
    expect(res.body.before).toBe(before)
    expect((await api(server.url, old).get(`/v1/runs/${run}`)).status).toBe(401)
    expect((await api(server.url, oldTrigger).post(`/v1/workflows/${wf}/runs`, {})).status).toBe(401)
    const fresh = (await t.client.post('/v1/tokens', { run_ids: [run] })).body.token as string
    expect((await api(server.url, fresh).get(`/v1/runs/${run}`)).status).toBe(200)
    // Admin only; not in the future.
    const reader = await newKey(['runs:read'])
    expect((await api(server.url, reader.key).post('/v1/tokens/revoke', {})).status).toBe(403)
    expect((await t.client.post('/v1/tokens/revoke', { before: new Date(Date.now() + 3_600_000).toISOString() })).status).toBe(400)
  })
})

describe('trigger tokens stay in their scope', () => {
  it('set only the tags they were minted with (403 otherwise), and their runs carry them', async () => {
    const res = await t.client.post('/v1/tokens', { scope: 'trigger', workflow_id: wf, max_runs: 5, run_tags: ['page:signup'] })
    expect(res.status, JSON.stringify(res.body)).toBe(201)
    expect(res.body.trigger.run_tags).toEqual(['page:signup'])
    const browser = api(server.url, res.body.token)
    const foreign = await browser.post(`/v1/workflows/${wf}/runs`, { tags: ['customer-42'] })
    expect(foreign.status).toBe(403)
    expect(foreign.body.error.code).toBe('tag_not_allowed')
    expect(foreign.body.error.details[0].path).toBe('body.tags')
    const ok = await browser.post(`/v1/workflows/${wf}/runs`, { tags: ['page:signup'] })
    expect(ok.status).toBe(202)
    const plain = await browser.post('/v1/runs', { workflow_id: wf })
    expect(plain.status).toBe(202)
    expect(plain.body.tags).toContain('page:signup')
    // A token minted with no tags may set none.
    const bare = api(server.url, (await t.client.post('/v1/tokens', { scope: 'trigger', workflow_id: wf })).body.token)
    expect((await bare.post(`/v1/workflows/${wf}/runs`, { tags: ['customer-42'] })).status).toBe(403)
    // A tag-scoped read token for customer-42 therefore never sees a run a page started.
    expect((await t.client.get(`/v1/runs?tag=customer-42`)).body.items).toEqual([])
  })

  it('pin variables (a different value is 403, the same value or none gets the pinned one) and limit the others', async () => {
    const res = await t.client.post('/v1/tokens', { scope: 'trigger', workflow_id: wf, max_runs: 10, variables: { account: 'acct_1' }, allowed_variables: ['note'] })
    expect(res.status, JSON.stringify(res.body)).toBe(201)
    const browser = api(server.url, res.body.token)
    const conflicting = await browser.post(`/v1/workflows/${wf}/runs`, { variables: { account: 'acct_2' } })
    expect(conflicting.status).toBe(403)
    expect(conflicting.body.error.code).toBe('variable_pinned')
    expect(conflicting.body.error.details[0].path).toBe('body.variables.account')
    const outside = await browser.post(`/v1/workflows/${wf}/runs`, { variables: { admin: true } })
    expect(outside.status).toBe(403)
    expect(outside.body.error.code).toBe('variable_not_allowed')
    const same = await browser.post(`/v1/workflows/${wf}/runs`, { variables: { account: 'acct_1', note: 'hi' } })
    expect(same.status).toBe(202)
    expect(same.body.variables).toEqual({ account: 'acct_1', note: 'hi' })
    const none = await browser.post(`/v1/workflows/${wf}/runs`, {})
    expect(none.body.variables).toEqual({ account: 'acct_1' })
    // Only trigger tokens take these, and the grant stays small enough to travel in the token.
    expect((await t.client.post('/v1/tokens', { run_ids: [none.body.id], variables: { a: 1 } })).status).toBe(400)
    expect((await t.client.post('/v1/tokens', { scope: 'trigger', workflow_id: wf, variables: { big: 'x'.repeat(4000) } })).status).toBe(400)
  })
})

describe('typed inputs: variables_schema', () => {
  const schema = {
    type: 'object',
    required: ['company', 'contact'],
    additionalProperties: false,
    properties: {
      company: { type: 'string', minLength: 2, maxLength: 40 },
      plan: { enum: ['free', 'pro'] },
      contact: { type: 'object', required: ['email'], properties: { email: { type: 'string', format: 'email' } } },
      seats: { type: 'array', items: { type: 'integer', minimum: 1 }, maxItems: 3 },
    },
  }

  it('is validated when saved (400), shown on GET, and enforced on triggers by keys and trigger tokens (400 naming the path)', async () => {
    const conn = t.connectionId
    const bad = await t.client.post('/v1/workflows', { name: 'typed', connection_id: conn, upstream_workflow_id: 'demo', variables_schema: { type: 'object', properties: { a: { type: 'strng' } } } })
    expect(bad.status).toBe(400)
    expect(JSON.stringify(bad.body.error.details)).toContain('body.variables_schema')
    for (const wrong of [{ type: 'string' }, { type: 'object', properties: { a: { type: 'string', pattern: '(a+)+$' } } }, { type: 'object', properties: { a: { format: 'regex' } } }]) {
      expect((await t.client.post('/v1/workflows', { name: 'typed', connection_id: conn, upstream_workflow_id: 'demo', variables_schema: wrong })).status, JSON.stringify(wrong)).toBe(400)
    }
    const made = await t.client.post('/v1/workflows', { name: 'typed', connection_id: conn, upstream_workflow_id: 'demo', config: { durationMs: 20_000 }, variables_schema: schema })
    expect(made.status, JSON.stringify(made.body)).toBe(201)
    const id = made.body.id as string
    expect((await t.client.get(`/v1/workflows/${id}`)).body.variables_schema).toEqual(schema)

    const good = { company: 'Acme', contact: { email: 'ada@example.com' }, seats: [1, 2] }
    expect((await t.client.post(`/v1/workflows/${id}/runs`, { variables: good })).status).toBe(202)
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ company: ['/../admin'], contact: { email: 'ada@example.com' } }, 'body.variables.company'],
      [{ company: 'Acme', contact: { email: 'not-an-email' } }, 'body.variables.contact.email'],
      [{ company: 'Acme', contact: {} }, 'body.variables.contact'],
      [{ company: 'Acme', contact: { email: 'ada@example.com' }, plan: 'enterprise' }, 'body.variables.plan'],
      [{ company: 'Acme', contact: { email: 'ada@example.com' }, seats: [0] }, 'body.variables.seats.0'],
      [{ company: 'Acme', contact: { email: 'ada@example.com' }, extra: 1 }, 'body.variables.extra'],
      [{ contact: { email: 'ada@example.com' } }, 'body.variables'],
    ]
    for (const [variables, path] of cases) {
      const res = await t.client.post(`/v1/workflows/${id}/runs`, { variables })
      expect(res.status, JSON.stringify(variables)).toBe(400)
      expect(res.body.error.code).toBe('invalid_variables')
      expect(res.body.error.details.map((d: { path: string }) => d.path), JSON.stringify(res.body.error)).toContain(path)
    }
    // The same from a trigger token, and its pinned values are checked too; a refused trigger spends nothing.
    const tok = await t.client.post('/v1/tokens', { scope: 'trigger', workflow_id: id, max_runs: 1, variables: { contact: { email: 'pinned@example.com' } } })
    const browser = api(server.url, tok.body.token)
    const refused = await browser.post(`/v1/workflows/${id}/runs`, { variables: { company: 'A' } })
    expect(refused.status).toBe(400)
    expect(refused.body.error.details.map((d: { path: string }) => d.path)).toContain('body.variables.company')
    const accepted = await browser.post(`/v1/workflows/${id}/runs`, { variables: { company: 'Acme' } })
    expect(accepted.status, JSON.stringify(accepted.body)).toBe(202)
    expect(accepted.body.variables.contact).toEqual({ email: 'pinned@example.com' })
    // A schedule is checked when saved, not first when it fires: a refused one is not created.
    const cron = { workflow_id: id, cron: '0 9 * * 1', timezone: 'UTC' }
    const badSchedule = await t.client.post('/v1/schedules', { ...cron, variables: { company: 'A' } })
    expect(badSchedule.status).toBe(400)
    expect(badSchedule.body.error.code).toBe('invalid_variables')
    expect((await t.client.get(`/v1/schedules?workflow_id=${id}`)).body.items).toEqual([])
    const schedule = await t.client.post('/v1/schedules', { ...cron, variables: good })
    expect(schedule.status, JSON.stringify(schedule.body)).toBe(201)
    const badPatch = await t.client.patch(`/v1/schedules/${schedule.body.id}`, { variables: { ...good, extra: 1 } })
    expect(badPatch.status).toBe(400)
    expect(badPatch.body.error.details.map((d: { path: string }) => d.path)).toContain('body.variables.extra')
    expect((await t.client.get(`/v1/schedules/${schedule.body.id}`)).body.variables).toEqual(good)
    await t.client.delete(`/v1/schedules/${schedule.body.id}`)
    // PATCH can change it or clear it.
    expect((await t.client.patch(`/v1/workflows/${id}`, { variables_schema: { type: 'object', properties: { x: { type: 'strin' } } } })).status).toBe(400)
    expect((await t.client.patch(`/v1/workflows/${id}`, { variables_schema: null })).body.variables_schema).toBeNull()
    expect((await t.client.post(`/v1/workflows/${id}/runs`, { variables: { anything: 1 } })).status).toBe(202)
  })
})

describe('rate limits key on the verified identity', () => {
  let limited: TestServer
  let lt: Awaited<ReturnType<typeof demoTenant>>
  beforeAll(async () => {
    limited = await startTestServer({ RUNRELAY_RATE_LIMIT_PER_MINUTE: '30' })
    lt = await demoTenant(limited, 'limited')
  })
  afterAll(async () => { await limited?.stop() })

  it('the same JWT spelled with spaces inside its signature shares one bucket, and /v1/me passes the limiter', async () => {
    const run = await lt.trigger(await lt.workflow('w', { durationMs: 20_000 }))
    const token = await lt.mint({ run_ids: [run] })
    const [h, p, s] = token.split('.')
    let accepted = 0, verified = 0
    for (let i = 0; i < 60; i++) {
      // Spaces at different places in the signature: a different string each time.
      const j = 1 + (i % (s!.length - 2))
      const spelled = `${h}.${p}.${s!.slice(0, j)} ${s!.slice(j)}`
      const status = (await api(limited.url, spelled).get(`/v1/runs/${run}`)).status
      if (status === 200) accepted++
      if (status !== 401) verified++
    }
    // The attack only matters if such spellings verify; either way no more than the limit get through.
    expect(accepted).toBeLessThanOrEqual(31)
    if (verified > 0) expect(accepted).toBeGreaterThan(0)
    // /v1/me draws from the same bucket as the rest of the key's requests.
    const key = await api(limited.url, lt.key)
    let meLimited = false
    for (let i = 0; i < 40 && !meLimited; i++) {
      const res = await key.get('/v1/me')
      if (res.status === 429) meLimited = true
      else expect(res.status).toBe(200)
    }
    expect(meLimited).toBe(true)
  })
})
