import { api, createTenant, type TestServer } from './server.ts'

/** A tenant with a demo connection and a demo workflow of the given config (no network). */
export async function demoTenant(server: Pick<TestServer, 'url' | 'rootKey'>, name = 'acme') {
  const t = await createTenant(server, name)
  const conn = await t.client.post('/v1/connections', { name: 'demo', provider: 'demo' })
  if (conn.status !== 201) throw new Error(`connection: ${conn.status} ${JSON.stringify(conn.body)}`)
  const workflow = async (wfName: string, config: Record<string, unknown> = {}, tags: string[] = []) => {
    const wf = await t.client.post('/v1/workflows', { name: wfName, connection_id: conn.body.id, upstream_workflow_id: 'demo', config, tags })
    if (wf.status !== 201) throw new Error(`workflow: ${wf.status} ${JSON.stringify(wf.body)}`)
    return wf.body.id as string
  }
  const trigger = async (workflowId: string, body: Record<string, unknown> = {}) => {
    const run = await t.client.post(`/v1/workflows/${workflowId}/runs`, body)
    if (run.status !== 202) throw new Error(`trigger: ${run.status} ${JSON.stringify(run.body)}`)
    return run.body.id as string
  }
  const mint = async (body: Record<string, unknown>) => {
    const res = await t.client.post('/v1/tokens', body)
    if (res.status !== 201) throw new Error(`token: ${res.status} ${JSON.stringify(res.body)}`)
    return res.body.token as string
  }
  /** Every stored event of a run, in order. */
  const history = async (runId: string) => (await t.client.get(`/v1/runs/${runId}/events?limit=1000`)).body.events as Array<{ id: number; seq: number; type: string; status: string }>
  return { ...t, connectionId: conn.body.id as string, workflow, trigger, mint, history, api: (key?: string) => api(server.url, key) }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Resolve `p`, or reject after `ms`. */
export function within<T>(p: Promise<T>, ms: number, what = 'promise'): Promise<T> {
  let timer: ReturnType<typeof setTimeout>
  return Promise.race([p, new Promise<T>((_, reject) => { timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms) })]).finally(() => clearTimeout(timer))
}
