import { header, IdempotencyStore, isObject, startFakeServer, type FakeCommonOptions, type FakeReply, type FakeServer } from './common.ts'

/**
 * Fake Wiv API (as docs/connectors.md describes it).
 *
 * - POST /workflows/{workflow_id}/run with `X-API-KEY` and {payload: {...}} → 200 {data: {event_type:
 *   "WORKFLOW_TRIGGER", execution_id, payload (echo), run_by, tenant_id, timestamp ("YYYY-MM-DD
 *   HH:MM:SS.ffffff", UTC without zone), trigger_id: "-", trigger_type: "MANUAL", workflow_id}}.
 * - Not on the page, plausible: 401 {message: "Unauthorized"} for a missing/wrong key, 404 {message}
 *   for a workflow not in `workflows` (when given), 400 {message} when the body has no object `payload`.
 * - There is no status endpoint. The fake plays the Wiv workflow's last step: `callBack(executionId,
 *   body)` POSTs `body` to the URL found in the payload under `callbackKey` (default
 *   `runrelay_callback_url`); with `autoCallback` it does so by itself `afterMs` after the trigger.
 */

export interface WivExecution {
  execution_id: string
  workflow_id: string
  payload: Record<string, unknown>
  callbacks: Array<{ status: number; body: unknown }>
}

export interface FakeWivOptions extends FakeCommonOptions {
  apiKey?: string
  workflows?: string[]
  runBy?: string
  tenantId?: string
  callbackKey?: string
  autoCallback?: { afterMs: number; body: unknown }
}

export interface FakeWiv extends FakeServer {
  state: { executions: Map<string, WivExecution>; triggers: number }
  /** POST `body` to the execution's callback URL (as the workflow's last step would). */
  callBack(executionId: string, body: unknown): Promise<{ status: number; body: unknown }>
}

const pad = (n: number, w = 2) => String(n).padStart(w, '0')
function wivTimestamp(d = new Date()): string {
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}.${pad(d.getUTCMilliseconds(), 3)}000`
}

export async function startFakeWiv(opts: FakeWivOptions = {}): Promise<FakeWiv> {
  const apiKey = opts.apiKey ?? 'wiv-key'
  const cbKey = opts.callbackKey ?? 'runrelay_callback_url'
  const executions = new Map<string, WivExecution>()
  const idem = new IdempotencyStore()
  let seq = 0
  let triggers = 0

  const callBack = async (executionId: string, body: unknown) => {
    const e = executions.get(executionId)
    if (!e) throw new Error(`no execution ${executionId}`)
    const url = e.payload[cbKey]
    if (typeof url !== 'string') throw new Error(`execution ${executionId} has no ${cbKey} in its payload`)
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
    const text = await res.text()
    let parsed: unknown = text
    try { parsed = JSON.parse(text) } catch { /* keep text */ }
    const out = { status: res.status, body: parsed }
    e.callbacks.push(out)
    return out
  }

  const server = await startFakeServer(async (req): Promise<FakeReply> => {
    if (header(req, 'x-api-key') !== apiKey) return { status: 401, body: { message: 'Unauthorized' } }
    const m = /^\/workflows\/([^/]+)\/run$/.exec(req.path)
    if (req.method === 'POST' && m) {
      const workflowId = decodeURIComponent(m[1])
      if (opts.workflows && !opts.workflows.includes(workflowId)) return { status: 404, body: { message: `Workflow ${workflowId} not found` } }
      if (!isObject(req.body) || (req.body.payload !== undefined && !isObject(req.body.payload))) {
        return { status: 400, body: { message: 'body must be {"payload": {...}}' } }
      }
      const payload = (req.body.payload ?? {}) as Record<string, unknown>
      return idem.handle(req, () => {
        triggers++
        const id = `exec_${(++seq).toString(16).padStart(12, '0')}`
        executions.set(id, { execution_id: id, workflow_id: workflowId, payload, callbacks: [] })
        if (opts.autoCallback) {
          const { afterMs, body } = opts.autoCallback
          setTimeout(() => { callBack(id, body).catch(() => {}) }, afterMs)
        }
        return {
          status: 200,
          body: {
            data: {
              event_type: 'WORKFLOW_TRIGGER',
              execution_id: id,
              payload,
              run_by: opts.runBy ?? 'api_user_name',
              tenant_id: opts.tenantId ?? 'tenant_xyz789',
              timestamp: wivTimestamp(),
              trigger_id: '-',
              trigger_type: 'MANUAL',
              workflow_id: workflowId,
            },
          },
        }
      })
    }
    return { status: 404, body: { message: 'Not Found' } }
  }, opts)

  return Object.assign(server, {
    state: { executions, get triggers() { return triggers } },
    callBack,
  })
}
