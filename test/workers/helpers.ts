/** Helpers for the runrelay Workers tests: HTTP through SELF, WebSocket and SSE subscribers, waits. */
import { env, SELF } from 'cloudflare:test'
import { genericWorkflowConfig, type Step } from '../fakes/generic-upstream.ts'
import { readSse, type SseEvent } from '../helpers/sse.ts'

export const BASE = 'http://runrelay.test'

export interface Reply { status: number; body: any; headers: Headers }

export async function call(method: string, path: string, key?: string, body?: unknown, headers: Record<string, string> = {}): Promise<Reply> {
  const res = await SELF.fetch(BASE + path, {
    method,
    headers: { ...(key ? { authorization: `Bearer ${key}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  const text = await res.text()
  let json: any = null
  try { json = text ? JSON.parse(text) : null } catch { json = text }
  return { status: res.status, body: json, headers: res.headers }
}

/** Poll until `fn` returns a truthy value, or fail after `timeoutMs`. */
export async function until<T>(fn: () => Promise<T> | T, timeoutMs: number, what: string): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await fn()
    if (v) return v as NonNullable<T>
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

export interface Tenant { tenantId: string; key: string; connectionId: string; workflowId: string }

/** A tenant with a key, an `http` connection to the fake upstream and a fast-polling workflow. */
export async function setupTenant(name: string, pollPolicy: Record<string, number> = { first_interval_ms: 100, max_interval_ms: 200 }): Promise<Tenant> {
  const t = await call('POST', '/v1/tenants', env.RUNRELAY_ROOT_KEY, { name })
  if (t.status !== 201) throw new Error(`tenant: ${t.status} ${JSON.stringify(t.body)}`)
  const key = t.body.key.key as string
  const conn = await call('POST', '/v1/connections', key, { name: 'fake', provider: 'http', base_url: env.UPSTREAM_URL })
  if (conn.status !== 201) throw new Error(`connection: ${conn.status} ${JSON.stringify(conn.body)}`)
  const wf = await call('POST', '/v1/workflows', key, {
    name: 'jobs', connection_id: conn.body.id, upstream_workflow_id: 'jobs', config: genericWorkflowConfig,
    input_template: { script: '{{script}}' }, poll_policy: pollPolicy, tags: ['fake'],
  })
  if (wf.status !== 201) throw new Error(`workflow: ${wf.status} ${JSON.stringify(wf.body)}`)
  return { tenantId: t.body.tenant.id, key, connectionId: conn.body.id, workflowId: wf.body.id }
}

export async function trigger(t: Tenant, script: Step[], tags: string[] = []): Promise<any> {
  const res = await call('POST', `/v1/workflows/${t.workflowId}/runs`, t.key, { variables: { script }, tags })
  if (res.status !== 202) throw new Error(`trigger: ${res.status} ${JSON.stringify(res.body)}`)
  return res.body
}

export const running = (n: number): Step[] => Array.from({ length: n }, (_, i) => ({ status: 'running', progress: (i + 1) / (n + 1) }))

export interface WsEvent { id: number; seq: number; type: string; status: string; run_id: string; workflow_id: string; tags: string[]; data: any }

/** A WebSocket subscriber through the Worker that records messages, events and the close. */
export async function openWs(path: string, key: string) {
  return recordWs(await SELF.fetch(BASE + path, { headers: { upgrade: 'websocket', authorization: `Bearer ${key}` } }))
}

/** Accept the WebSocket of a 101 answer and record its messages, events and close. */
export async function recordWs(res: Response) {
  if (res.status !== 101 || !res.webSocket) throw new Error(`upgrade refused: ${res.status} ${await res.text()}`)
  const ws = res.webSocket
  const messages: any[] = []
  const events: WsEvent[] = []
  let closeInfo: { code: number; reason: string } | null = null
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    ws.addEventListener('close', (e) => { closeInfo = { code: e.code, reason: e.reason }; resolve(closeInfo) })
  })
  ws.addEventListener('message', (e) => {
    const msg = JSON.parse(String(e.data))
    messages.push(msg)
    if (msg.type === 'event') events.push(msg.event)
    if (msg.type === 'batch') events.push(...msg.events)
  })
  ws.accept()
  return {
    ws, messages, events, closed,
    get closeInfo() { return closeInfo },
    send: (msg: unknown) => ws.send(typeof msg === 'string' ? msg : JSON.stringify(msg)),
    close: () => { try { ws.close(1000, 'bye') } catch { /* closed */ } },
  }
}

/** An SSE subscriber through the Worker (parses the stream as EventSource would). */
export async function openSse(path: string, key: string, headers: Record<string, string> = {}) {
  const controller = new AbortController()
  const res = await SELF.fetch(BASE + path, { headers: { accept: 'text/event-stream', authorization: `Bearer ${key}`, ...headers }, signal: controller.signal })
  const events: SseEvent[] = []
  let ended = false
  const done = (async () => {
    if (res.body) await readSse(res.body, events)
    ended = true
  })()
  return { status: res.status, headers: res.headers, events, done, get ended() { return ended }, close: () => controller.abort() }
}

export const seqs = (events: { seq: number }[]) => events.map((e) => e.seq)
export const oneToN = (n: number) => Array.from({ length: n }, (_, i) => i + 1)
