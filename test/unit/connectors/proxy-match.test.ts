import { describe, expect, it } from 'vitest'
import { indigeniusConnector } from '../../../src/connectors/indigenius/index.ts'
import { interactlyConnector } from '../../../src/connectors/interactly/index.ts'
import { pipelinegenerationConnector } from '../../../src/connectors/pipelinegeneration/index.ts'
import type { ProxiedCall } from '../../../src/connectors/types.ts'
import { wivConnector } from '../../../src/connectors/wiv/index.ts'
import { wokeloConnector } from '../../../src/connectors/wokelo/index.ts'
import { makeCtx, ref } from './context.ts'

const call = (method: string, path: string, requestBody: unknown, status: number, responseBody: unknown): ProxiedCall =>
  ({ method, path, query: new URLSearchParams(), requestBody, status, responseBody })

describe('matchTrigger (drop-in proxy)', () => {
  it('pipelinegeneration: the trigger answer, not the list or an error', () => {
    const m = pipelinegenerationConnector.matchTrigger!(call('POST', '/v1/workflows/trigger', { workflow_id: 'wf_abc123' }, 202, { execution_id: 'exec_1', workflow_id: 'wf_abc123', status: 'queued' }))
    expect(m).toMatchObject({ upstreamId: 'exec_1', upstreamWorkflowId: 'wf_abc123', status: 'queued' })
    expect(pipelinegenerationConnector.matchTrigger!(call('GET', '/v1/workflows', undefined, 200, []))).toBeNull()
    expect(pipelinegenerationConnector.matchTrigger!(call('POST', '/v1/workflows/trigger', {}, 400, { error: 'workflow_id is required' }))).toBeNull()
  })

  it('wokelo: report_id from the start answer, workflow from the request', () => {
    expect(wokeloConnector.matchTrigger!(call('POST', '/api/workflow_manager/start/', { workflow: 'industry_x' }, 200, { report_id: 86220 })))
      .toMatchObject({ upstreamId: '86220', upstreamWorkflowId: 'industry_x', status: 'queued', state: { report_id: 86220 } })
    expect(wokeloConnector.matchTrigger!(call('POST', '/auth/token/', {}, 200, { access: 'x' }))).toBeNull()
  })

  it('wiv: data.execution_id, workflow from the path', () => {
    const m = wivConnector.matchTrigger!(call('POST', '/workflows/wf%201/run', { payload: {} }, 200, { data: { execution_id: 'exec_a', event_type: 'WORKFLOW_TRIGGER', run_by: 'u', timestamp: '2025-05-22 20:59:07.014093' } }))
    expect(m).toMatchObject({ upstreamId: 'exec_a', upstreamWorkflowId: 'wf 1', status: 'running', state: { trigger: { run_by: 'u', timestamp: '2025-05-22T20:59:07.014Z' } } })
    expect(wivConnector.matchTrigger!(call('POST', '/workflows/wf/run', {}, 200, { data: {} }))).toBeNull()
  })

  it('indigenius: /run answered 201 with a jobId; not jobs, schedule or status false', () => {
    expect(indigeniusConnector.matchTrigger!(call('POST', '/v1/workflows/665e4a34c65bb95f2f2d72e1/run', undefined, 201, { status: true, message: 'Workflow execution started', jobId: 'job_1' })))
      .toMatchObject({ upstreamId: 'job_1', upstreamWorkflowId: '665e4a34c65bb95f2f2d72e1', status: 'running', message: 'Workflow execution started' })
    expect(indigeniusConnector.matchTrigger!(call('POST', '/v1/workflows/x/run', undefined, 201, { status: false, message: 'no' }))).toBeNull()
    expect(indigeniusConnector.matchTrigger!(call('POST', '/v1/workflows/schedule', {}, 201, { status: true, jobId: 'job_2' }))).toBeNull()
  })

  it('interactly: only the start command', () => {
    const run = { workflow_run: { _id: 'a'.repeat(24), workflow_run: { workflow_id: 'b'.repeat(24), status: 'not_started', input_output_pairs: [{ run_input: {}, run_output: { events: [{ type: 'run_created' }], thread_to_node_outputs: {} } }] } } }
    expect(interactlyConnector.matchTrigger!(call('POST', '/workflows/v1/workflow-runs', { workflow_id: 'b'.repeat(24) }, 200, run)))
      .toMatchObject({ upstreamId: 'a'.repeat(24), upstreamWorkflowId: 'b'.repeat(24), status: 'queued', outputs: [{ key: 'pair0.event0' }] })
    expect(interactlyConnector.matchTrigger!(call('POST', '/workflows/v1/workflow-runs', { command: 'pause', workflow_run_id: 'a'.repeat(24) }, 200, run))).toBeNull()
  })
})

describe('authHeaders', () => {
  it('sets each vendor\'s header from the credentials', async () => {
    const ctx = (provider: string) => makeCtx({ provider, baseUrl: 'http://x.test', credentials: { apiKey: 'K', token: 'T' } })
    expect(await pipelinegenerationConnector.authHeaders!(ctx('pipelinegeneration'))).toEqual({ 'x-api-key': 'K' })
    expect(await wivConnector.authHeaders!(ctx('wiv'))).toEqual({ 'X-API-KEY': 'K' })
    expect(await indigeniusConnector.authHeaders!(ctx('indigenius'))).toEqual({ 'X-API-Key': 'K' })
    expect(await interactlyConnector.authHeaders!(ctx('interactly'))).toEqual({ Authorization: 'Bearer K' })
    expect(await wokeloConnector.authHeaders!(ctx('wokelo'))).toEqual({ Authorization: 'T' })
    expect(await wokeloConnector.authHeaders!(makeCtx({ provider: 'wokelo', baseUrl: 'http://x.test', credentials: { token: 'T' }, connectionConfig: { authScheme: 'bare' } }))).toEqual({ Authorization: 'T' })
  })
})

describe('wokelo parseCallback (webhook)', () => {
  const ctx = makeCtx({ provider: 'wokelo', baseUrl: 'http://w.test', credentials: { token: 'T' } })
  it('maps the status word and describes the result', () => {
    const obs = wokeloConnector.parseCallback!(ctx, ref('86220'), { report_id: 86220, status: 'COMPLETED', result: { pages: 3 } })
    expect(obs).toMatchObject({ status: 'completed', upstreamStatus: 'COMPLETED', result: { report_id: 86220, data: { pages: 3 } } })
    expect(wokeloConnector.parseCallback!(ctx, ref('86220'), { request_id: 86220, status: 'FAILED', error: 'no data' })).toMatchObject({ status: 'failed', error: { message: 'no data' } })
  })
  it('ignores a webhook about another report', () => {
    const obs = wokeloConnector.parseCallback!(ctx, ref('86220'), { report_id: 1, status: 'COMPLETED' })
    expect(obs.status).toBeUndefined()
  })
})
