// Type-checked against the installed package's .d.ts (test/packages/sdk.test.ts): the types ship,
// and they are the server's, not `any`.
import { createRunRelay, verifyWebhookRequest, type Run, type RunStatus, type components } from '@runrelay/sdk'

export async function typed(url: string, key: string, request: Request): Promise<RunStatus> {
  const rr = createRunRelay({ url, key })
  const run: Run = await rr.runs.triggerAndWait('wf_1', { variables: { a: 1 }, timeoutMs: 1000 })
  const list = await rr.api.GET('/v1/runs', { params: { query: { status: 'failed', limit: 10 } } })
  const first: Run | undefined = list.data?.items[0]
  const events = await rr.api.GET('/v1/runs/{id}/events', { params: { path: { id: run.id } } })
  const seq: number | undefined = events.data?.events[0]?.seq
  const wf: components['schemas']['Workflow'] | undefined = (await rr.api.GET('/v1/workflows/{id}', { params: { path: { id: 'wf_1' } } })).data
  // @ts-expect-error no such route
  await rr.api.GET('/v1/nope')
  // @ts-expect-error a status is one of RunStatus
  const wrong: RunStatus = 'exploded'
  // @ts-expect-error trigger tokens need a workflowId
  await rr.tokens.trigger({ maxRuns: 2 })
  const hook = await verifyWebhookRequest('whsec_x', request)
  void first, seq, wf, wrong, hook.data.event.seq
  return run.status
}
