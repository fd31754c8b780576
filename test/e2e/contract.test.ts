import { execFile } from 'node:child_process'
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'
import { Ajv2020 } from 'ajv/dist/2020.js'
import addFormats from 'ajv-formats'
import openapiTS, { astToString } from 'openapi-typescript'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ClientMessage, ServerMessage } from '../../src/core/protocol.ts'
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
    const docs = server.runtime.routeDocs.all()
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
    // One media type per operation: the JSON history and the SSE stream are two operations, so a
    // generated client types listRunEvents' data as an EventList (not `string | EventList`).
    const events = openapi.paths['/v1/runs/{id}/events'].get
    expect(events.operationId).toBe('listRunEvents')
    expect(Object.keys(events.responses['200'].content)).toEqual(['application/json'])
    expect(events.description).toMatch(/streamRun/)
    // Names a generated client reads well: no path noise (`listEmbedJs`), a verb and a noun.
    const ids = Object.values<any>(openapi.paths).flatMap((methods) => Object.values<any>(methods).map((op) => op.operationId as string))
    expect(openapi.paths['/embed.js'].get.operationId).toBe('getEmbedScript')
    // (A method suffix is what the generator adds when two routes derive one name; the proxy's names are its methods on purpose.)
    expect(ids.filter((id) => !id.startsWith('proxy') && /Js$|Json$|Post$|Get$|Patch$|Put$|Delete$/.test(id))).toEqual([])
    expect(ids.filter((id) => !/^(list|get|create|update|delete|trigger|cancel|pause|resume|send|replay|stream|test|rotate|redeliver|revoke|post|proxy)[A-Z]/.test(id))).toEqual([])
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

  it('a client generated with openapi-typescript type-checks a call to every route (tsc on the generated file)', async () => {
    const dir = join(ROOT, 'test-artifacts', 'contract-every-route')
    rmSync(dir, { recursive: true, force: true })
    mkdirSync(dir, { recursive: true })
    writeFileSync(join(dir, 'api.ts'), astToString(await openapiTS(openapi)))
    const program = everyRouteProgram(openapi)
    writeFileSync(join(dir, 'every-route.ts'), program)
    const ops = Object.values<any>(openapi.paths).reduce((n, methods) => n + Object.keys(methods).length, 0)
    expect(program.match(/await client\.(GET|POST|PATCH|PUT|DELETE)\(/g)?.length).toBe(ops + 1)
    // The harness bites: the same program against a document whose events route declares SSE on its 200 again fails.
    const broken = structuredClone(openapi)
    broken.paths['/v1/runs/{id}/events'].get.responses['200'].content['text/event-stream'] = { schema: { type: 'string' } }
    writeFileSync(join(dir, 'api-broken.ts'), astToString(await openapiTS(broken)))
    writeFileSync(join(dir, 'every-route-broken.ts'), program.replace("from './api'", "from './api-broken'"))
    const tsconfig = (files: string[]) => JSON.stringify({
      compilerOptions: { target: 'ES2023', module: 'ESNext', moduleResolution: 'Bundler', lib: ['ES2023', 'DOM'], types: [], strict: true, noEmit: true, skipLibCheck: true },
      files,
    })
    writeFileSync(join(dir, 'tsconfig.json'), tsconfig(['api.ts', 'every-route.ts']))
    writeFileSync(join(dir, 'tsconfig.broken.json'), tsconfig(['api-broken.ts', 'every-route-broken.ts']))
    const tsc = (project: string) => exec(join(ROOT, 'node_modules', '.bin', 'tsc'), ['-p', join(dir, project)], { cwd: ROOT, timeout: 120_000 }).then(() => '', (err) => `${err.stdout ?? ''}${err.stderr ?? ''}`)
    const [good, bad] = await Promise.all([tsc('tsconfig.json'), tsc('tsconfig.broken.json')])
    expect(good).toBe('')
    expect(bad).toMatch(/every-route-broken\.ts.*TS2339|TS2322/)
  }, 240_000)

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

/** A minimal value of a JSON Schema (required fields only), so a generated call type-checks its body for real. */
function sampleOf(schema: any, components: any, depth = 0): unknown {
  if (!schema || depth > 8) return {}
  if (schema.$ref) return sampleOf(components.schemas[schema.$ref.split('/').pop()], components, depth + 1)
  for (const k of ['anyOf', 'oneOf']) if (schema[k]) return sampleOf(schema[k].find((s: any) => s.type !== 'null') ?? schema[k][0], components, depth + 1)
  if (schema.allOf) return Object.assign({}, ...schema.allOf.map((s: any) => sampleOf(s, components, depth + 1)))
  if (schema.const !== undefined) return schema.const
  if (schema.enum) return schema.enum[0]
  const type = Array.isArray(schema.type) ? schema.type.find((t: string) => t !== 'null') : schema.type
  switch (type) {
    case 'string': return schema.format === 'date-time' ? '2030-01-01T00:00:00Z' : schema.format === 'uri' ? 'https://example.com' : 'x'.repeat(Math.max(1, schema.minLength ?? 1))
    case 'integer': case 'number': return schema.minimum ?? 1
    case 'boolean': return true
    case 'array': return Array.from({ length: schema.minItems ?? 0 }, () => sampleOf(schema.items, components, depth + 1))
    case 'object': case undefined:
      return Object.fromEntries((schema.required ?? []).map((k: string) => [k, sampleOf(schema.properties?.[k], components, depth + 1)]))
    default: return {}
  }
}

/**
 * A program with one typed call per operation of the document: the path, the method, the
 * parameters and a body built from the schema must all type-check, and each JSON answer's
 * `data` must be assignable to the schema the operation names (never `string | …`).
 */
function everyRouteProgram(openapi: any): string {
  const lines = ['import createClient from \'openapi-fetch\'', 'import type { components, paths } from \'./api\'', '', 'const client = createClient<paths>({ baseUrl: \'http://127.0.0.1:1\' })', 'export async function everyRoute() {']
  let n = 0
  for (const [path, methods] of Object.entries<any>(openapi.paths)) {
    for (const [method, op] of Object.entries<any>(methods)) {
      const params: Record<string, Record<string, unknown>> = {}
      for (const p of op.parameters ?? []) if (p.required) (params[p.in] ??= {})[p.name] = p.in === 'path' ? 'id_1' : sampleOf(p.schema, openapi.components)
      const body = op.requestBody?.content?.['application/json']?.schema
      const init = { ...(Object.keys(params).length ? { params } : {}), ...(body ? { body: sampleOf(body, openapi.components) } : {}) }
      const ok = Object.entries<any>(op.responses).find(([code]) => /^2\d\d$/.test(code) && code !== '204')
      const ref = ok?.[1]?.content?.['application/json']?.schema?.$ref as string | undefined
      const call = `await client.${method.toUpperCase()}(${JSON.stringify(path)}${Object.keys(init).length ? `, ${JSON.stringify(init)}` : ''})`
      lines.push(ref ? `  const r${n}: components['schemas'][${JSON.stringify(ref.split('/').pop())}] | undefined = (${call}).data` : `  const r${n} = ${call}`)
      lines.push(`  void r${n}`)
      n++
    }
  }
  lines.push(`  const events = await client.GET('/v1/runs/{id}/events', { params: { path: { id: 'run_1' } } })`)
  lines.push('  // data is an EventList: its fields are there without narrowing a string away first.')
  lines.push('  const count: number | undefined = events.data?.events.length')
  lines.push('  return count')
  lines.push('}')
  return lines.join('\n') + '\n'
}

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
