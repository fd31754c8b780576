/**
 * The API contract as the Worker serves it: the same generator runs in workerd, so the
 * OpenAPI and AsyncAPI documents must come out complete there too (the Node suite lints them).
 */
import { describe, expect, it } from 'vitest'
import { ClientMessage, ServerMessage } from '../../src/core/protocol.ts'
import { call } from './helpers.ts'

describe('runrelay on Workers: API contract', () => {
  it('serves an OpenAPI document with operationIds, 4xx answers, named schemas and headers', async () => {
    const res = await call('GET', '/openapi.json')
    expect(res.status).toBe(200)
    const spec = res.body
    expect(spec.openapi).toBe('3.1.0')
    const ops = Object.values<Record<string, any>>(spec.paths).flatMap((methods) => Object.values(methods))
    expect(ops.length).toBeGreaterThan(60)
    const ids = ops.map((op) => op.operationId)
    expect(ids.every((id) => typeof id === 'string' && id.length > 0)).toBe(true)
    expect(new Set(ids).size).toBe(ids.length)
    for (const op of ops) expect(Object.keys(op.responses).some((code) => code.startsWith('4'))).toBe(true)
    for (const name of ['Run', 'RunEvent', 'Workflow', 'Connection', 'Error']) expect(spec.components.schemas[name], name).toBeDefined()
    const trigger = spec.paths['/v1/workflows/{id}/runs'].post
    expect(trigger.responses['202'].content['application/json'].schema).toEqual({ $ref: '#/components/schemas/Run' })
    expect(trigger.parameters.map((p: any) => p.name)).toContain('Idempotency-Key')
  })

  it('serves the AsyncAPI document of the streams with every protocol message', async () => {
    const res = await call('GET', '/asyncapi.json')
    expect(res.status).toBe(200)
    const doc = res.body
    expect(doc.asyncapi).toMatch(/^3\./)
    const types = [...ServerMessage.options, ...ClientMessage.options].map((o) => o.shape.type.value).sort()
    expect(Object.keys(doc.channels.runStream.messages).sort()).toEqual(types)
    expect(doc.servers.websocket.protocol).toMatch(/^wss?$/)
    expect(doc.components.schemas.RunEvent.properties.seq).toBeDefined()
  })
})
