import { expect } from 'vitest'
import { freePort } from './child.ts'
import { openWs } from './clients.ts'
import { within } from './live.ts'
import { api, createTenant, startTestServer, until, type TestServer } from './server.ts'

export const WAIT = 15_000
export const FAST = { first_interval_ms: 100, max_interval_ms: 200 }
const TERMINAL = ['completed', 'failed', 'canceled', 'timed_out']

/**
 * The test server on a known port with RUNRELAY_PUBLIC_URL set: with PORT=0 the runtime cannot
 * know its port when it builds callback URLs, and upstreams would be told to call port 0.
 */
export async function startCallbackServer(): Promise<TestServer> {
  for (let attempt = 0; ; attempt++) {
    const port = await freePort()
    try {
      return await startTestServer({ PORT: String(port), RUNRELAY_PUBLIC_URL: `http://127.0.0.1:${port}` })
    } catch (err) {
      if (attempt >= 3) throw err
    }
  }
}

export type Client = ReturnType<typeof api>

/** A tenant with helpers to create connections and workflows and trigger runs. */
export async function providerTenant(server: TestServer, name: string) {
  const t = await createTenant(server, name)
  const c = t.client
  const connection = async (provider: string, baseUrl: string, credentials: Record<string, string>, extra: Record<string, unknown> = {}) => {
    const res = await c.post('/v1/connections', { name: provider, provider, base_url: baseUrl, credentials, ...extra })
    expect(res.status, JSON.stringify(res.body)).toBe(201)
    return res.body.id as string
  }
  const workflow = async (connectionId: string, upstreamWorkflowId: string, extra: Record<string, unknown> = {}) => {
    const res = await c.post('/v1/workflows', { name: `wf ${upstreamWorkflowId}`, connection_id: connectionId, upstream_workflow_id: upstreamWorkflowId, poll_policy: FAST, ...extra })
    expect(res.status, JSON.stringify(res.body)).toBe(201)
    return res.body.id as string
  }
  const trigger = async (workflowId: string, body: Record<string, unknown> = {}) => {
    const res = await c.post(`/v1/workflows/${workflowId}/runs`, body)
    expect(res.status, JSON.stringify(res.body)).toBe(202)
    return res.body.id as string
  }
  const run = async (runId: string) => (await c.get(`/v1/runs/${runId}`)).body
  const history = async (runId: string) => (await c.get(`/v1/runs/${runId}/events?limit=1000`)).body.events as any[]
  const waitStatus = (runId: string, statuses: string[], ms = WAIT) =>
    until(async () => { const r = await run(runId); return statuses.includes(r.status) ? r : null }, ms, `run ${runId} to reach ${statuses.join('|')}`)
  /** A WebSocket subscriber of one run, from seq 1. */
  const subscribe = (runId: string) => {
    const ws = openWs(`${server.wsUrl}/v1/runs/${runId}/stream?after=0`, { authorization: `Bearer ${t.key}` })
    return {
      ws,
      /** Wait for the close and check seq 1..n without gaps, a terminal event last, close 1000. */
      async finished(expected?: string) {
        const closed = await within(ws.closed, WAIT, `stream of ${runId} to close`)
        const events = ws.events
        expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1))
        expect(events[0]?.type).toBe('run.created')
        const last = events.at(-1)!
        expect(last.type).toBe('run.status_changed')
        expect(TERMINAL).toContain(last.data.to)
        if (expected) expect(last.data.to).toBe(expected)
        expect(closed.code).toBe(1000)
        return events
      },
    }
  }
  return { ...t, connection, workflow, trigger, run, history, waitStatus, subscribe }
}
