import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { emptyRun, foldRun, watchRun, watchRuns, type RunEvent, type WebSocketLike } from '../../packages/client/src/index.ts'
import { demoTenant } from '../helpers/live.ts'
import { startTestServer, until, type TestServer } from '../helpers/server.ts'

// Run snapshots against a live server: the fold of real events, and live lists.

/** The global WebSocket, connecting `ms` late (a slow handshake, a proxy): the feed opens that much after the list could have loaded. */
const lateWebSocket = (ms: number) => class implements WebSocketLike {
  readyState = 0
  onopen: WebSocketLike['onopen'] = null
  onmessage: WebSocketLike['onmessage'] = null
  onclose: WebSocketLike['onclose'] = null
  onerror: WebSocketLike['onerror'] = null
  private ws: WebSocket | undefined
  private closed = false
  constructor(url: string, protocols?: string | string[]) {
    setTimeout(() => {
      if (this.closed) return
      const ws = this.ws = new WebSocket(url, protocols)
      ws.onopen = (e) => { this.readyState = ws.readyState; this.onopen?.(e) }
      ws.onmessage = (e) => this.onmessage?.(e)
      ws.onclose = (e) => { this.readyState = ws.readyState; this.onclose?.(e) }
      ws.onerror = (e) => this.onerror?.(e)
    }, ms)
  }
  send(data: string) { this.ws?.send(data) }
  close(code?: number, reason?: string) { this.closed = true; this.ws?.close(code, reason) }
}
let server: TestServer
let t: Awaited<ReturnType<typeof demoTenant>>
beforeAll(async () => {
  server = await startTestServer()
  t = await demoTenant(server)
})
afterAll(async () => { await server?.stop() })

describe('run snapshots', () => {
  it('a failed run folds into status, outputs, error and timings; replayed events fold once', async () => {
    const wf = await t.workflow('doomed', { durationMs: 600, steps: 2, outcome: 'failed' })
    const runId = await t.trigger(wf)
    const live = watchRun({ url: server.url, token: t.key, runId })
    const run = await until(() => (live.get().run.finished ? live.get().run : undefined), 15_000, 'run end')
    live.close()
    expect(run.status).toBe('failed')
    expect(run.error?.code).toBeTruthy()
    expect(run.error?.message).toContain('the demo run was set to fail')
    expect(run.createdAt).toBeTruthy()
    expect(run.finishedAt).toBeTruthy()
    // The duration a user shows: from the first `running` event (else created) to the end, in ms; it
    // ends where the server's run ends, and never counts more than the server's duration (which
    // starts at the row's started_at, before the first `running` event).
    const stored = (await t.client.get(`/v1/runs/${runId}`)).body
    expect(run.durationMs).toBe(Date.parse(run.finishedAt!) - Date.parse(run.startedAt ?? run.createdAt!))
    expect(run.durationMs).toBeGreaterThan(0)
    // (The event's `at` and the row's finished_at are stamped in the same commit, a millisecond or so apart.)
    expect(Math.abs(Date.parse(run.finishedAt!) - Date.parse(stored.finished_at))).toBeLessThan(50)
    expect(run.durationMs).toBeLessThanOrEqual(stored.duration_ms)
    expect(run.events.map((e) => e.seq)).toEqual(run.events.map((_, i) => i + 1))
    // The stored history folds to the same snapshot, and folding it twice changes nothing.
    const history = (await t.client.get(`/v1/runs/${runId}/events?limit=1000`)).body.events as RunEvent[]
    const once = history.reduce((s, e) => foldRun(s, e), emptyRun(runId))
    expect(history.reduce((s, e) => foldRun(s, e), once)).toBe(once)
    expect({ ...once, events: once.events.length }).toEqual({ ...run, events: run.events.length })
  })

  it('watchRuns with a key starts from the current list and adds new runs live, newest first', async () => {
    const wf = await t.workflow('listed', { durationMs: 400, steps: 1 })
    const before = await t.trigger(wf)
    await until(async () => (await t.client.get(`/v1/runs/${before}`)).body.status === 'completed', 10_000, 'first run done')
    const live = watchRuns({ url: server.url, token: t.key, workflowId: wf })
    await until(() => live.get().runs.some((r) => r.id === before && r.status === 'completed'), 5_000, 'listed run')
    await until(() => live.get().state === 'open', 5_000, 'feed open')
    const after = await t.trigger(wf)
    await until(() => live.get().runs.find((r) => r.id === after)?.status === 'completed', 10_000, 'live run completed')
    expect(live.get().runs.map((r) => r.id)).toEqual([after, before])
    live.close()
  })

  it('watchRuns with a key lists a run that started and ended while its feed was connecting', async () => {
    const wf = await t.workflow('between', { durationMs: 200, steps: 1 })
    const live = watchRuns({ url: server.url, token: t.key, workflowId: wf, WebSocket: lateWebSocket(2_000) })
    const run = await t.trigger(wf)
    await until(async () => (await t.client.get(`/v1/runs/${run}`)).body.finished_at, 10_000, 'run done')
    await until(() => live.get().runs.find((r) => r.id === run)?.status === 'completed', 10_000, 'run listed, completed')
    live.close()
  })
})
