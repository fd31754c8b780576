import { execFile } from 'node:child_process'
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'
import { Ajv2020 } from 'ajv/dist/2020.js'
import addFormats from 'ajv-formats'
import openapiTS, { astToString } from 'openapi-typescript'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ClientMessage, ServerMessage } from '../../src/core/protocol.ts'
import { routeDocs } from '../../src/http/openapi.ts'
import { asyncApiValidate, lintApi, redoclyLint } from '../../scripts/lint-api.ts'
import { demoTenant } from '../helpers/live.ts'
import { createTenant, startTestServer, type TestServer } from '../helpers/server.ts'

// The API contract as client generators meet it: every Hono route documented, the OpenAPI
// document clean under Redocly and Spectral, the AsyncAPI document valid, and a client generated
// with openapi-typescript that type-checks and makes real calls with openapi-fetch.

const ROOT = resolve(import.meta.dirname, '../..')
const ARTIFACTS = join(ROOT, 'test-artifacts', 'contract')
const exec = promisify(execFile)

describe('API contract', () => {
  let server: TestServer
  let openapi: any
  let asyncapi: any

  beforeAll(async () => {
    server = await startTestServer()
    openapi = await (await fetch(`${server.url}/openapi.json`)).json()
    asyncapi = await (await fetch(`${server.url}/asyncapi.json`)).json()
  }, 30_000)
  afterAll(async () => {
    await server?.stop()
  })

  it('documents every registered Hono route (so a route merged without an operation fails here)', () => {
    const docs = routeDocs()
    const covers = (method: string, path: string) => docs.some((d) => (method === 'ALL' || d.method === method.toLowerCase()) && (d.path === path || d.matches?.includes(path)))
    const routes = new Map(server.runtime.app.routes.map((r) => [`${r.method} ${r.path}`, r]))
    const undocumented = [...routes.values()]
      // `app.use` middleware is registered as ALL on a wildcard path; a wildcard handler must list itself in `matches`.
      .filter((r) => !covers(r.method, r.path) && !(r.method === 'ALL' && r.path.endsWith('*')))
      .map((r) => `${r.method} ${r.path}`)
    expect(undocumented).toEqual([])
    expect(routes.size).toBeGreaterThan(60)

    // Every documented route is in the document with a unique operationId and its 4xx answers.
    const ops = Object.entries<any>(openapi.paths).flatMap(([path, methods]) => Object.entries<any>(methods).map(([method, op]) => ({ path, method, op })))
    expect(ops.length).toBe(docs.length)
    const ids = ops.map((o) => o.op.operationId)
    expect(ids.every((id) => typeof id === 'string' && /^[a-z][A-Za-z0-9]+$/.test(id))).toBe(true)
    expect(new Set(ids).size).toBe(ids.length)
    for (const { op } of ops) expect(Object.keys(op.responses).some((code) => code.startsWith('4'))).toBe(true)
  })

  it('names the schemas clients need and uses them by $ref, with declared headers and stream answers', () => {
    const schemas = openapi.components.schemas
    for (const name of ['Run', 'RunEvent', 'RunStatus', 'Workflow', 'Connection', 'Error', 'RunList', 'EventList', 'Schedule', 'WebhookEndpoint']) expect(schemas[name], name).toBeDefined()
    const json = (op: any, code: string) => op.responses[code].content['application/json'].schema
    const trigger = openapi.paths['/v1/workflows/{id}/runs'].post
    expect(json(trigger, '202')).toEqual({ $ref: '#/components/schemas/Run' })
    expect(trigger.parameters.find((p: any) => p.in === 'header').name).toBe('Idempotency-Key')
    expect(trigger.responses['202'].headers['Idempotent-Replayed']).toBeDefined()
    expect(trigger.responses['422']).toEqual({ $ref: '#/components/responses/IdempotencyKeyMismatch' })
    expect(openapi.components.responses.TooManyRequests.headers['Retry-After']).toBeDefined()
    expect(openapi.components.responses.NotFound.content['application/json'].schema).toEqual({ $ref: '#/components/schemas/Error' })
    expect(json(openapi.paths['/v1/runs'].get, '200')).toEqual({ $ref: '#/components/schemas/RunList' })
    expect(schemas.EventList.properties.events.items).toEqual({ $ref: '#/components/schemas/RunEvent' })

    const stream = openapi.paths['/v1/runs/{id}/stream'].get
    expect(Object.keys(stream.responses['200'].content)).toEqual(['text/event-stream'])
    expect(stream.responses['101'].description).toMatch(/WebSocket/)
    expect(stream.responses['426']).toBeDefined()
    expect(stream.parameters.map((p: any) => p.name)).toEqual(expect.arrayContaining(['Last-Event-ID', 'Upgrade', 'Sec-WebSocket-Protocol', 'after']))
    const events = openapi.paths['/v1/runs/{id}/events'].get
    expect(Object.keys(events.responses['200'].content)).toEqual(['application/json', 'text/event-stream'])
  })

  it('passes Redocly (recommended) and Spectral (spectral:oas) with 0 errors and 0 warnings, and the AsyncAPI parser', async () => {
    const reports = await lintApi(openapi, asyncapi, ARTIFACTS)
    for (const r of reports) expect({ tool: r.tool, errors: r.errors, warnings: r.warnings, problems: r.problems }).toEqual({ tool: r.tool, errors: 0, warnings: 0, problems: [] })

    // The harness itself can fail: a document with an operation stripped of its id and 4xx answers is flagged.
    const broken = structuredClone(openapi)
    const op = broken.paths['/v1/runs/{id}'].get
    delete op.operationId
    for (const code of Object.keys(op.responses)) if (code.startsWith('4')) delete op.responses[code]
    const brokenPath = join(ARTIFACTS, 'broken-openapi.json')
    writeFileSync(brokenPath, JSON.stringify(broken))
    const flagged = await redoclyLint(brokenPath)
    expect(flagged.problems.join('\n')).toMatch(/operation-operationId/)
    expect(flagged.problems.join('\n')).toMatch(/operation-4xx-response/)
  }, 120_000)

  it('publishes every WebSocket message type of the zod protocol in /asyncapi.json', async () => {
    expect(asyncapi.asyncapi).toMatch(/^3\./)
    const types = [...ServerMessage.options, ...ClientMessage.options].map((o) => o.shape.type.value)
    expect(Object.keys(asyncapi.channels.runStream.messages).sort()).toEqual([...types].sort())
    expect(Object.keys(asyncapi.channels.feed.messages).sort()).toEqual([...types].sort())
    const { document, errors } = await asyncApiValidate(asyncapi)
    expect(errors).toBe(0)
    const doc = document as { messages(): { all(): Array<{ name(): string | undefined }> } }
    expect(doc.messages().all().map((m) => m.name())).toEqual(expect.arrayContaining(types))
    // The event payload is the same RunEvent the HTTP API documents.
    expect(asyncapi.components.schemas.EventMessage.properties.event).toEqual({ $ref: '#/components/schemas/RunEvent' })
    expect(Object.keys(asyncapi.components.schemas.RunEvent.properties).sort()).toEqual(Object.keys(openapi.components.schemas.RunEvent.properties).sort())
  }, 60_000)

  it('describes what the server really answers: every status declared, every JSON body valid against its schema', async () => {
    const ajv = new Ajv2020({ strict: false, allErrors: true, unicodeRegExp: false })
    addFormats.default(ajv)
    // The validator bites: a Run without its fields, or with a status outside RunStatus, is refused.
    const run0 = ajv.compile({ $ref: '#/components/schemas/Run', components: openapi.components })
    expect(run0({})).toBe(false)
    const seen: string[] = []
    /** Call the live server and check the answer against the operation `method template`. */
    const conforms = async (method: string, template: string, path: string, opts: { key?: string; body?: unknown; headers?: Record<string, string> } = {}) => {
      const res = await fetch(server.url + path, {
        method: method.toUpperCase(),
        headers: { ...(opts.key ? { authorization: `Bearer ${opts.key}` } : {}), ...(opts.body !== undefined ? { 'content-type': 'application/json' } : {}), ...opts.headers },
        body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      })
      const text = await res.text()
      const isJson = (res.headers.get('content-type') ?? '').includes('application/json')
      const body = isJson && text ? JSON.parse(text) : text
      const op = openapi.paths[template]?.[method]
      expect(op, `${method} ${template} is in the document`).toBeDefined()
      let declared = op.responses[String(res.status)]
      expect(declared, `${method} ${template} answered ${res.status}, which it does not declare`).toBeDefined()
      if (declared.$ref) declared = openapi.components.responses[declared.$ref.split('/').pop()]
      const schema = declared.content?.['application/json']?.schema
      if (schema && isJson) {
        const validate = ajv.compile({ ...schema, components: openapi.components })
        expect(validate(body), `${method} ${template} ${res.status}: ${JSON.stringify(validate.errors)}`).toBe(true)
      }
      seen.push(`${res.status}`)
      return { status: res.status, body }
    }

    const t = await demoTenant(server, 'conformance')
    const wf = await t.workflow('slow', { durationMs: 60_000 })
    const root = server.rootKey
    await conforms('get', '/healthz', '/healthz')
    await conforms('get', '/v1/me', '/v1/me', { key: t.key })
    await conforms('get', '/v1/runs', '/v1/runs', {})
    await conforms('post', '/v1/tenants', '/v1/tenants', { key: root, body: { name: 'other' } })
    await conforms('get', '/v1/tenants', '/v1/tenants', { key: root })
    await conforms('get', '/v1/keys', '/v1/keys', { key: t.key })
    const reader = await conforms('post', '/v1/keys', '/v1/keys', { key: t.key, body: { name: 'reader', scopes: ['workflows:read'] } })
    await conforms('post', '/v1/runs', '/v1/runs', { key: reader.body.key, body: { workflow_id: wf } })

    const trigger = (variables: unknown) => conforms('post', '/v1/workflows/{id}/runs', `/v1/workflows/${wf}/runs`, { key: t.key, body: { variables }, headers: { 'idempotency-key': 'conformance-1' } })
    const run = await trigger({ n: 1 })
    expect(run.status).toBe(202)
    expect((await trigger({ n: 1 })).body.id).toBe(run.body.id)
    expect((await trigger({ n: 2 })).status).toBe(422)
    const read = await conforms('get', '/v1/runs/{id}', `/v1/runs/${run.body.id}`, { key: t.key })
    expect(run0(read.body)).toBe(true)
    expect(run0({ ...read.body, status: 'exploded' })).toBe(false)
    await conforms('get', '/v1/runs/{id}', '/v1/runs/run_missing', { key: t.key })
    await conforms('get', '/v1/runs', `/v1/runs?workflow_id=${wf}&status=queued,running`, { key: t.key })
    await conforms('get', '/v1/runs/{id}/events', `/v1/runs/${run.body.id}/events`, { key: t.key })
    await conforms('get', '/v1/runs/{id}/stream', `/v1/runs/${run.body.id}/stream`, { key: t.key })
    await conforms('post', '/v1/tokens', '/v1/tokens', { key: t.key, body: { run_ids: [run.body.id] } })
    await conforms('post', '/v1/connections', '/v1/connections', { key: t.key, body: {} })
    await conforms('get', '/v1/connections', '/v1/connections', { key: t.key })
    await conforms('get', '/v1/connections/{id}', `/v1/connections/${t.connectionId}`, { key: t.key })
    await conforms('get', '/v1/workflows', '/v1/workflows', { key: t.key })
    await conforms('get', '/v1/workflows/{id}', `/v1/workflows/${wf}`, { key: t.key })
    await conforms('get', '/v1/workflows/{id}/summary', `/v1/workflows/${wf}/summary`, { key: t.key })
    await conforms('delete', '/v1/workflows/{id}', `/v1/workflows/${wf}`, { key: t.key })
    await conforms('post', '/v1/schedules', '/v1/schedules', { key: t.key, body: { workflow_id: wf, cron: '0 3 * * *', timezone: 'Europe/Berlin' } })
    await conforms('get', '/v1/schedules', '/v1/schedules', { key: t.key })
    await conforms('get', '/v1/webhook-deliveries', '/v1/webhook-deliveries', { key: t.key })
    await conforms('post', '/v1/runs/{id}/cancel', `/v1/runs/${run.body.id}/cancel`, { key: t.key, body: { reason: 'done' } })
    await conforms('post', '/v1/runs/{id}/pause', `/v1/runs/${run.body.id}/pause`, { key: t.key, body: {} })
    await conforms('get', '/openapi.json', '/openapi.json')
    await conforms('get', '/asyncapi.json', '/asyncapi.json')
    expect(new Set(seen)).toEqual(new Set(['200', '201', '202', '400', '401', '403', '404', '409', '422', '426']))
  }, 60_000)

  it('generates a typed client with openapi-typescript that type-checks and makes real calls with openapi-fetch', async () => {
    const dir = join(ROOT, 'test-artifacts', 'contract-client')
    rmSync(dir, { recursive: true, force: true })
    mkdirSync(dir, { recursive: true })
    writeFileSync(join(dir, 'api.ts'), astToString(await openapiTS(openapi)))
    writeFileSync(join(dir, 'client.ts'), CLIENT_PROGRAM)
    writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({
      compilerOptions: { target: 'ES2023', module: 'ESNext', moduleResolution: 'Bundler', lib: ['ES2023', 'DOM'], types: ['node'], strict: true, noEmit: true, skipLibCheck: true },
      files: ['api.ts', 'client.ts'],
    }))
    // tsc on the generated file and the program: the ts-expect-error lines prove the types are real, not `any`.
    const tsc = await exec(join(ROOT, 'node_modules', '.bin', 'tsc'), ['-p', join(dir, 'tsconfig.json')], { cwd: ROOT, timeout: 90_000 }).catch((err) => err)
    expect(`${tsc.stdout ?? ''}${tsc.stderr ?? ''}`).toBe('')

    const t = await createTenant(server, 'contract')
    const { stdout } = await exec(join(ROOT, 'node_modules', '.bin', 'tsx'), [join(dir, 'client.ts')], {
      cwd: ROOT, timeout: 60_000, env: { ...process.env, BASE_URL: server.url, API_KEY: t.key },
    })
    const out = JSON.parse(stdout.trim().split('\n').pop()!)
    expect(out.connection).toMatch(/^\w+/)
    expect(out.first).toMatchObject({ status: 202, replayed: null, runStatus: 'queued' })
    expect(out.again).toEqual({ status: 202, replayed: 'true', sameRun: true })
    expect(out.mismatch).toEqual({ status: 422, code: 'idempotency_key_mismatch' })
    expect(out.read).toEqual({ status: 200, sameRun: true })
    expect(out.listed).toBe(1)
    expect(out.missing).toEqual({ status: 404, code: 'not_found' })
    // What the client saw is what the server stored.
    const stored = await (await fetch(`${server.url}/v1/runs/${out.first.id}`, { headers: { authorization: `Bearer ${t.key}` } })).json()
    expect(stored.id).toBe(out.first.id)
  }, 150_000)
})

/** A small program against the generated types: what a backend developer writes on day one. */
const CLIENT_PROGRAM = `import createClient from 'openapi-fetch'
import type { components, paths } from './api'

type Run = components['schemas']['Run']
type RunStatus = components['schemas']['RunStatus']

const client = createClient<paths>({ baseUrl: process.env.BASE_URL!, headers: { authorization: 'Bearer ' + process.env.API_KEY } })

const connection = await client.POST('/v1/connections', { body: { name: 'demo', provider: 'demo' } })
if (!connection.data) throw new Error('connection: ' + JSON.stringify(connection.error))
const workflow = await client.POST('/v1/workflows', { body: { name: 'typed', connection_id: connection.data.id, upstream_workflow_id: 'demo', config: { durationMs: 60000 } } })
if (!workflow.data) throw new Error('workflow: ' + JSON.stringify(workflow.error))

const trigger = (variables: Record<string, unknown>) => client.POST('/v1/workflows/{id}/runs', {
  params: { path: { id: workflow.data.id }, header: { 'Idempotency-Key': 'order-42' } },
  body: { variables },
})
const first = await trigger({ n: 1 })
if (!first.data) throw new Error('trigger: ' + JSON.stringify(first.error))
const run: Run = first.data
const status: RunStatus = run.status
// @ts-expect-error a Run has no such field
run.no_such_field
// @ts-expect-error a status is one of the RunStatus words, not a number
const wrong: number = run.status
const typeOnly = () => {
  // @ts-expect-error the Idempotency-Key header is a string
  void client.POST('/v1/runs', { params: { header: { 'Idempotency-Key': 42 } }, body: { workflow_id: 'x' } })
}

const again = await trigger({ n: 1 })
const mismatch = await trigger({ n: 2 })
const read = await client.GET('/v1/runs/{id}', { params: { path: { id: run.id } } })
const listed = await client.GET('/v1/runs', { params: { query: { workflow_id: workflow.data.id, limit: 10 } } })
const missing = await client.GET('/v1/runs/{id}', { params: { path: { id: 'run_does_not_exist' } } })
await client.POST('/v1/runs/{id}/cancel', { params: { path: { id: run.id } }, body: { reason: 'contract test done' } })

console.log(JSON.stringify({
  connection: connection.data.id,
  first: { status: first.response.status, replayed: first.response.headers.get('Idempotent-Replayed'), runStatus: status, id: run.id },
  again: { status: again.response.status, replayed: again.response.headers.get('Idempotent-Replayed'), sameRun: again.data?.id === run.id },
  mismatch: { status: mismatch.response.status, code: mismatch.error?.error.code },
  read: { status: read.response.status, sameRun: read.data?.id === run.id },
  listed: listed.data?.items.length,
  missing: { status: missing.response.status, code: missing.error?.error.code },
}))
void wrong, typeOnly
`
