import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { launchDeno, type LaunchedServer } from '../conformance/launch.ts'
import { openSse, openWs } from '../helpers/clients.ts'
import { api } from '../helpers/server.ts'

/** Fail with a message instead of hanging: every wait in this file goes through here. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout>
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms))),
  ])
}

async function until(fn: () => boolean, ms: number, what: string) {
  const deadline = Date.now() + ms
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

describe('runrelay on Deno (real deno child process, embedded libSQL file)', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'runrelay-deno-test-'))
  let server: LaunchedServer | undefined
  let key = ''
  let workflowId = ''
  let finishedRunId = ''
  let finishedEvents = 0
  let liveRunId = ''

  beforeAll(async () => {
    server = await launchDeno({ RUNRELAY_DATA_DIR: dataDir })
  })
  afterAll(async () => {
    await server?.stop()
    rmSync(dataDir, { recursive: true, force: true })
  })

  it('answers /healthz', async () => {
    const res = await fetch(server!.url + '/healthz')
    expect(res.status).toBe(200)
    expect(await res.json()).toMatchObject({ ok: true })
  })

  it('creates a tenant, a demo connection, a workflow and a run, and streams it over WebSocket and SSE', async () => {
    const root = api(server!.url, server!.rootKey)
    const tenant = await root.post('/v1/tenants', { name: 'deno-acme' })
    expect(tenant.status).toBe(201)
    key = tenant.body.key.key
    const client = api(server!.url, key)

    const conn = await client.post('/v1/connections', { name: 'demo', provider: 'demo' })
    expect(conn.status).toBe(201)
    const wf = await client.post('/v1/workflows', {
      name: 'demo on deno', connection_id: conn.body.id, upstream_workflow_id: 'demo',
      config: { durationMs: 500, steps: 2, queueMs: 0 },
    })
    expect(wf.status).toBe(201)
    workflowId = wf.body.id

    const run = await client.post(`/v1/workflows/${workflowId}/runs`, {})
    expect(run.status).toBe(202)
    finishedRunId = run.body.id

    const wsUrl = server!.url.replace(/^http/, 'ws')
    const ws = openWs(`${wsUrl}/v1/runs/${finishedRunId}/stream`, { authorization: `Bearer ${key}` })
    const sse = openSse(`${server!.url}/v1/runs/${finishedRunId}/events`, { authorization: `Bearer ${key}` })
    await within(ws.opened, 5_000, 'the WebSocket to open')
    const closed = await within(ws.closed, 10_000, 'the WebSocket to close after the run finished')
    expect(closed.code).toBe(1000)
    expect(ws.messages[0]).toMatchObject({ type: 'hello', run_id: finishedRunId })

    const seqs = ws.events.map((e) => e.seq)
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1))
    expect(ws.events[0]!.type).toBe('run.created')
    const last = ws.events.at(-1)!
    expect(last.type).toBe('run.status_changed')
    expect(last.status).toBe('completed')
    finishedEvents = seqs.length

    await within(sse.done, 5_000, 'the SSE stream to end after the run finished')
    expect(sse.status).toBe(200)
    expect(sse.events.map((e) => Number(e.id))).toEqual(seqs)
    expect(sse.events.at(-1)!.event).toBe('run.status_changed')
    expect(JSON.parse(sse.events.at(-1)!.data)).toMatchObject({ seq: finishedEvents, status: 'completed' })

    // History replay after the fact: the same events, from the store.
    const history = await client.get(`/v1/runs/${finishedRunId}/events`)
    expect(history.status).toBe(200)
    expect(history.body.events.map((e: { seq: number }) => e.seq)).toEqual(seqs)
  })

  it('selects the runrelay.v1 WebSocket subprotocol when the client offers it', async () => {
    const wsUrl = `${server!.url.replace(/^http/, 'ws')}/v1/runs/${finishedRunId}/stream`
    const plain = openWs(wsUrl, { authorization: `Bearer ${key}` }, ['runrelay.v1'])
    await within(plain.opened, 5_000, 'the WebSocket with runrelay.v1 to open')
    expect(plain.ws.protocol).toBe('runrelay.v1')
    await within(plain.closed, 5_000, 'the finished run\'s stream to close')

    // The SDK's offer: the token as a subprotocol (no header), runrelay.v1 selected even when offered second.
    const minted = await api(server!.url, key).post('/v1/tokens', { run_ids: [finishedRunId], ttl_seconds: 60 })
    expect(minted.status).toBe(201)
    const sdk = openWs(wsUrl, {}, [`runrelay.token.${minted.body.token}`, 'runrelay.v1'])
    await within(sdk.opened, 5_000, 'the token-subprotocol WebSocket to open')
    expect(sdk.ws.protocol).toBe('runrelay.v1')
    await within(sdk.closed, 5_000, 'the finished run\'s stream to close')
  })

  it('closes open sockets with 1012 on SIGTERM and exits cleanly', async () => {
    const client = api(server!.url, key)
    const run = await client.post(`/v1/workflows/${workflowId}/runs`, { variables: { durationMs: 600_000 } })
    expect(run.status).toBe(202)
    liveRunId = run.body.id
    const ws = openWs(`${server!.url.replace(/^http/, 'ws')}/v1/runs/${liveRunId}/stream`, { authorization: `Bearer ${key}` })
    await within(ws.opened, 5_000, 'the WebSocket to open')
    await until(() => ws.messages.some((m) => m.type === 'caught_up'), 5_000, 'caught_up')

    const stopped = server!.stop()
    const closed = await within(ws.closed, 5_000, 'the WebSocket to close on SIGTERM')
    expect(closed.code).toBe(1012)
    await within(stopped, 10_000, 'the Deno process to exit')
    expect(await server!.exited).toEqual({ code: 0, signal: null })
  })

  it('keeps its data across a restart on the same data dir and resumes unfinished runs', async () => {
    server = await launchDeno({ RUNRELAY_DATA_DIR: dataDir })
    const client = api(server.url, key)
    const finished = await client.get(`/v1/runs/${finishedRunId}`)
    expect(finished.status).toBe(200)
    expect(finished.body.status).toBe('completed')
    const history = await client.get(`/v1/runs/${finishedRunId}/events`)
    expect(history.body.events).toHaveLength(finishedEvents)

    // The long run is watched again: a new subscriber replays its history, then stays open.
    const ws = openWs(`${server.url.replace(/^http/, 'ws')}/v1/runs/${liveRunId}/stream?after=0`, { authorization: `Bearer ${key}` })
    await within(ws.opened, 5_000, 'the WebSocket to open after the restart')
    await until(() => ws.messages.some((m) => m.type === 'caught_up'), 5_000, 'caught_up after the restart')
    expect(ws.events[0]!.type).toBe('run.created')
    const live = await client.get(`/v1/runs/${liveRunId}`)
    expect(['queued', 'running']).toContain(live.body.status)
    ws.close()
    await within(ws.closed, 5_000, 'the client close')
  })
})
