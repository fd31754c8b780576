import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { SchemaComponents } from '../../src/http/api-documents.ts'
import { operationIdOf } from '../../src/http/openapi.ts'

// The parts of the generator a new route relies on without saying anything: its operation
// name, and named schemas that differ between request and answer.
describe('OpenAPI generator', () => {
  it('names operations from the method and path', () => {
    expect(operationIdOf('get', '/v1/runs')).toBe('listRuns')
    expect(operationIdOf('post', '/v1/runs')).toBe('createRun')
    expect(operationIdOf('get', '/v1/runs/:id')).toBe('getRun')
    expect(operationIdOf('patch', '/v1/workflows/:id')).toBe('updateWorkflow')
    expect(operationIdOf('delete', '/v1/tenants/:id/keys/:keyId')).toBe('deleteTenantKey')
    expect(operationIdOf('post', '/v1/runs/:id/cancel')).toBe('cancelRun')
    expect(operationIdOf('get', '/v1/runs/:id/events')).toBe('listRunEvents')
    expect(operationIdOf('get', '/v1/webhook-deliveries/:id/attempts')).toBe('listWebhookDeliveryAttempts')
    expect(operationIdOf('get', '/v1/workflows/:id/summary')).toBe('getWorkflowSummary')
    expect(operationIdOf('get', '/healthz')).toBe('getHealthz')
  })

  it('moves named schemas to components, and names a request form that differs <Name>Input', () => {
    const Policy = z.object({ every_ms: z.number().default(1000) }).meta({ id: 'TestPolicy' })
    const Answer = z.object({ policy: Policy, at: z.string() }).meta({ id: 'TestAnswer' })
    const Body = z.object({ policy: Policy })
    const c = new SchemaComponents()
    expect(c.add(Answer, 'output')).toEqual({ $ref: '#/components/schemas/TestAnswer' })
    const body = c.add(Body, 'input') as { properties: Record<string, unknown> }
    // With its default the field is optional in a request and always present in an answer.
    expect(body.properties.policy).toEqual({ $ref: '#/components/schemas/TestPolicyInput' })
    expect(c.schemas.TestPolicy).toMatchObject({ required: ['every_ms'] })
    expect(c.schemas.TestPolicyInput).not.toHaveProperty('required')
    expect((c.schemas.TestPolicyInput as any).properties.every_ms).toEqual({ type: 'number', description: 'Default: 1000.' })
    expect((c.schemas.TestAnswer as any).properties.policy).toEqual({ $ref: '#/components/schemas/TestPolicy' })
  })
})
