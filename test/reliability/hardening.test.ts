/**
 * Issue 12, items 1–6 (resources and protocol), on Node: bytes bound never-reading SSE
 * subscribers, incoming WebSocket messages are capped, deep JSON is a 400, streams of a
 * finished run end (and EventSource stops), a 413 reaches a client still sending, and long
 * URLs get the documented 414. Deno and workerd run the protocol cases in the conformance
 * suite; the SSE byte bound runs on Deno below too.
 */
import { EventSource } from 'eventsource'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { callbackExpiry, callbackUrl } from '../../src/core/binding.ts'
import { SecretBox } from '../../src/core/crypto.ts'
import { launchDeno } from '../conformance/launch.ts'
import { startChildServer } from '../helpers/child.ts'
import { openSse, openWs } from '../helpers/clients.ts'
import { demoTenant, within } from '../helpers/live.ts'
import { startTestServer, until, type TestServer } from '../helpers/server.ts'
import { recordFigures } from './figures.ts'
import { checkHistory, type Ev } from './subscriber.ts'

const SSE_LIMIT = 256 * 1024
const MiB = 1024 * 1024
const figures: Record<string, unknown> = {}

/** JSON text `[[[…{}…]]]` nested `depth` deep (built as text: JSON.stringify itself overflows on it). */
const nested = (depth: number): string => '['.repeat(depth - 1) + '{}' + ']'.repeat(depth - 1)

/** Send raw bytes over a fresh TCP connection; resolves with everything read until the server closes (or `ms`). */
function rawExchange(port: number, write: (s: Socket) => void, ms = 10_000): Promise<{ text: string; error: string | null }> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1')
    const chunks: Buffer[] = []
    let error: string | null = null
    const done = () => { clearTimeout(timer); resolve({ text: Buffer.concat(chunks).toString('latin1'), error }) }
    const timer = setTimeout(() => { s.destroy(); done() }, ms)
    s.on('data', (d) => chunks.push(d))
    s.on('error', (e: NodeJS.ErrnoException) => { error = e.code ?? e.message })
    s.on('close', done)
    s.on('connect', () => write(s))
  })
}

/** Complete SSE events (`id`, `event`, parsed `data`) in a raw HTTP response. */
function sseEventsOf(raw: string): Array<{ id?: string; event?: string; data: any }> {
  const body = raw.slice(raw.indexOf('\r\n\r\n') + 4)
  // Chunked framing: drop the size lines (hex alone on a line) between chunks.
  const text = body.replace(/\r\n[0-9a-f]+\r\n/g, '').replace(/^[0-9a-f]+\r\n/, '')
  const out: Array<{ id?: string; event?: string; data: any }> = []
  const blocks = text.split('\n\n')
  blocks.pop() // incomplete
  for (const block of blocks) {
    const ev: { id?: string; event?: string; data: any } = { data: undefined }
    for (const line of block.split('\n')) {
      const i = line.indexOf(':')
      if (i <= 0) continue
      const [k, v] = [line.slice(0, i), line.slice(i + 1).replace(/^ /, '')]
      if (k === 'id') ev.id = v
      else if (k === 'event') ev.event = v
      else if (k === 'data') { try { ev.data = JSON.parse(v) } catch { ev.data = v } }
    }
    if (ev.data !== undefined) out.push(ev)
  }
  return out
}

/**
 * A feed SSE subscriber that stops reading, events flowing until `maxBytes` were published
 * (or the server dropped it); then it reads again: the stream must have ended, and a resume
 * with Last-Event-ID gets every missed event once.
 */
async function neverReadingSse(base: { url: string; rootKey: string }, name: string, serverRss?: () => number) {
  const t = await demoTenant(base, name)
  const blob = 'x'.repeat(512 * 1024)
  const wf = await t.workflow('sse-slow', { durationMs: 200, steps: 1, queueMs: 0 })
  const port = Number(new URL(base.url).port)
  const s = connect(port, '127.0.0.1')
  const chunks: Buffer[] = []
  let ended = false
  s.on('data', (d) => chunks.push(d))
  s.on('error', () => { ended = true })
  s.on('close', () => { ended = true })
  s.on('end', () => { ended = true })
  await new Promise((r) => s.once('connect', r))
  s.write(`GET /v1/stream?after=0 HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\nAuthorization: Bearer ${t.key}\r\n\r\n`)
  await until(() => Buffer.concat(chunks).includes('retry:'), 10_000, 'SSE stream open')
  s.pause()
  const rssBefore = serverRss?.()
  let rssPeak = rssBefore ?? 0
  let published = 0
  let runs = 0
  const started = Date.now()
  // 48 runs × 512 KiB: well past the limit plus what the kernel's socket buffers hold.
  while (published < 24 * MiB && Date.now() - started < 40_000) {
    await t.trigger(wf, { variables: { note: blob } })
    published += blob.length
    runs++
    if (serverRss) rssPeak = Math.max(rssPeak, serverRss())
  }
  // Past the grace period a dropped subscriber is disconnected even though it never read.
  await new Promise((r) => setTimeout(r, 6_000))
  if (serverRss) rssPeak = Math.max(rssPeak, serverRss())
  s.resume()
  // Ended: the connection dropped, or the chunked response completed (the connection may stay open for keep-alive).
  const responseComplete = () => Buffer.concat(chunks).subarray(-7).toString('latin1') === '\r\n0\r\n\r\n'
  const endedAfterResume = await until(() => ended || responseComplete(), 15_000, 'the SSE stream of the never-reading client to end').catch(() => false)
  s.destroy()
  const got = sseEventsOf(Buffer.concat(chunks).toString('utf8'))
  const events = got.filter((e) => e.id !== undefined).map((e) => e.data as Ev)
  const last = events.reduce((m, e) => Math.max(m, e.id), 0)
  await until(async () => (await t.client.get('/v1/runs?limit=200')).body.items.every((r: any) => r.finished_at), 20_000, 'runs finished')
  const ids = (await t.client.get('/v1/runs?limit=200')).body.items.map((r: any) => r.id)
  const all = (await Promise.all(ids.map((id: string) => t.history(id)))).flat().sort((a: any, b: any) => a.id - b.id) as Ev[]
  const resumed = openSse(`${base.url}/v1/stream`, { authorization: `Bearer ${t.key}`, 'last-event-id': String(last) })
  await until(() => resumed.events.some((e) => Number(e.id) === all.at(-1)!.id), 20_000, 'resumed SSE caught up').catch(() => {})
  resumed.close()
  const check = checkHistory(all, [...events, ...resumed.events.map((e) => JSON.parse(e.data) as Ev)], (e) => e.id)
  return {
    endedAfterResume, check, runs, published_mb: +(published / MiB).toFixed(1), received_before_drop: events.length,
    slow_consumer_event: got.some((e) => e.event === 'error' && e.data?.code === 'slow_consumer'),
    ...(serverRss ? { server_rss_before_mb: Math.round(rssBefore! / MiB), server_rss_peak_mb: Math.round(rssPeak / MiB) } : {}),
  }
}

describe('reliability: hardening of streams and input (Node)', () => {
  let server: TestServer
  let t: Awaited<ReturnType<typeof demoTenant>>
  let finishedRun: string
  let lastSeq: number
  const auth = () => ({ authorization: `Bearer ${t.key}` })

  beforeAll(async () => {
    server = await startTestServer({ RUNRELAY_WS_MAX_BUFFERED_BYTES: String(SSE_LIMIT), RUNRELAY_RATE_LIMIT_PER_MINUTE: '0' })
    t = await demoTenant(server, 'hardening')
    const wf = await t.workflow('quick', { durationMs: 200, steps: 2, queueMs: 0 })
    await t.client.patch(`/v1/workflows/${wf}`, { poll_policy: { first_interval_ms: 100, max_interval_ms: 100 } })
    finishedRun = await t.trigger(wf)
    await until(async () => (await t.client.get(`/v1/runs/${finishedRun}`)).body.finished_at, 15_000, 'run finished')
    lastSeq = (await t.history(finishedRun)).at(-1)!.seq
  })
  afterAll(async () => {
    await server?.stop()
    recordFigures('hardening', figures)
  })

  it('1. a never-reading SSE subscriber is ended by bytes, and resumes with Last-Event-ID without loss', async () => {
    // A server process of its own, so its RSS is the server's alone.
    const dataDir = mkdtempSync(join(tmpdir(), 'runrelay-sse-'))
    const child = await startChildServer({ RUNRELAY_DATA_DIR: dataDir, RUNRELAY_ROOT_KEY: server.rootKey, RUNRELAY_ALLOW_PRIVATE_NETWORK: '1', RUNRELAY_LOG: 'silent', RUNRELAY_WS_MAX_BUFFERED_BYTES: String(SSE_LIMIT), RUNRELAY_RATE_LIMIT_PER_MINUTE: '0' })
    const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.proc.pid}/status`, 'utf8'))?.[1] ?? 0) * 1024
    try {
      const r = await neverReadingSse({ url: child.url, rootKey: server.rootKey }, 'sse-slow-node', rss)
      figures.sse_never_reading_node = { limit_bytes: SSE_LIMIT, ...r }
      expect(r.endedAfterResume, 'the server ended the stream').toBe(true)
      expect(r.check).toMatchObject({ lost: 0, duplicated: 0, reordered: 0 })
    } finally {
      child.proc.kill('SIGKILL')
      await child.exited
      rmSync(dataDir, { recursive: true, force: true })
    }
  }, 90_000)

  it('2. a WebSocket message over 64 KiB closes the socket with 1009; smaller ones are answered', async () => {
    const ws = openWs(`${server.wsUrl}/v1/stream`, auth())
    await ws.opened
    ws.ws.send(JSON.stringify({ type: 'ping', pad: 'x'.repeat(60 * 1024) }))
    await until(() => ws.messages.some((m) => m.type === 'error' && m.code === 'bad_message'), 5_000, 'bad_message for an oversized-but-allowed frame')
    ws.ws.send('x'.repeat(65 * 1024))
    const closed = await within(ws.closed, 5_000, 'close after a 65 KiB message')
    expect(closed.code).toBe(1009)
  })

  it('3. JSON nested deeper than 64 is a 400 everywhere JSON comes in (API, callbacks, WebSocket)', async () => {
    const wf = await t.workflow('deep', { durationMs: 100, steps: 1, queueMs: 0 })
    const deep = await t.client.post(`/v1/workflows/${wf}/runs`, `{"variables":{"v":${nested(5_000)}}}`)
    expect(deep.status).toBe(400)
    expect(deep.body.error.code).toBe('json_too_deep')
    const before = (await t.client.get('/v1/runs?limit=200')).body.items.length
    expect((await t.client.post(`/v1/workflows/${wf}/runs`, `{"variables":{"v":${nested(64)}}}`)).status).toBe(400)
    expect((await t.client.get('/v1/runs?limit=200')).body.items.length).toBe(before)
    // Up to the limit is fine.
    expect((await t.client.post(`/v1/workflows/${wf}/runs`, `{"variables":{"v":${nested(62)}}}`)).status).toBe(202)
    // Callbacks (of a run still going: a finished run's callback URL is spent, 410, before its body is read).
    const box = await SecretBox.fromKey(readFileSync(join(server.dataDir, 'encryption.key'), 'utf8'))
    const slow = await t.workflow('deep-slow', { durationMs: 60_000, steps: 1, queueMs: 0 })
    const running = (await t.client.get(`/v1/runs/${await t.trigger(slow)}`)).body
    const url = await callbackUrl(box, server.url, running.id, callbackExpiry({ deadlineAt: Date.parse(running.deadline_at), createdAt: Date.parse(running.created_at) }))
    const cb = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: `{"status":${nested(5_000)}}` })
    expect(cb.status).toBe(400)
    expect((await cb.json()).error.code).toBe('json_too_deep')
    // WebSocket client messages: a ping with deep padding is refused, not answered.
    const ws = openWs(`${server.wsUrl}/v1/stream`, auth())
    await ws.opened
    ws.ws.send(`{"type":"ping","pad":${nested(200)}}`)
    await until(() => ws.messages.some((m) => m.type === 'error' || m.type === 'pong'), 5_000, 'an answer')
    expect(ws.messages.find((m) => m.type === 'error' || m.type === 'pong')).toMatchObject({ type: 'error', code: 'json_too_deep' })
    ws.close()
  })

  it('4. resuming a finished run ends: WebSocket closes 1000, SSE answers 204, EventSource stops', async () => {
    const ws = openWs(`${server.wsUrl}/v1/runs/${finishedRun}/stream?after=${lastSeq}`, auth())
    const closed = await within(ws.closed, 5_000, 'the 1000 close of a resumed finished run')
    expect(closed.code).toBe(1000)
    expect(ws.events).toEqual([])
    expect(ws.messages.map((m) => m.type)).toEqual(['hello', 'caught_up'])
    // SSE at the end: 204 (EventSource does not reconnect); before the end: the rest, then the stream ends.
    const atEnd = await fetch(`${server.url}/v1/runs/${finishedRun}/events`, { headers: { ...auth(), accept: 'text/event-stream', 'last-event-id': String(lastSeq) } })
    expect(atEnd.status).toBe(204)
    const viaStream = await fetch(`${server.url}/v1/runs/${finishedRun}/stream?after=${lastSeq}`, { headers: { ...auth(), accept: 'text/event-stream' } })
    expect(viaStream.status).toBe(204)
    const tail = openSse(`${server.url}/v1/runs/${finishedRun}/events`, { ...auth(), 'last-event-id': String(lastSeq - 1) })
    await within(tail.done, 5_000, 'the SSE stream of a finished run to end')
    expect(tail.events.map((e) => Number(e.id))).toEqual([lastSeq])
    // A real EventSource: every event once, then it stops (one connection, one 204).
    let connections = 0
    const es = new EventSource(`${server.url}/v1/runs/${finishedRun}/events`, {
      fetch: (input, init) => { connections++; return fetch(input, { ...init, headers: { ...(init?.headers as Record<string, string>), ...auth() } }) },
    })
    const seen: number[] = []
    for (const type of ['run.created', 'run.status_changed', 'run.progress', 'run.output']) es.addEventListener(type, (e) => seen.push(Number((e as MessageEvent).lastEventId)))
    await until(() => es.readyState === EventSource.CLOSED, 10_000, 'EventSource to stop reconnecting')
    await new Promise((r) => setTimeout(r, 1_500))
    expect(es.readyState).toBe(EventSource.CLOSED)
    expect(connections).toBe(2)
    expect(seen).toEqual(Array.from({ length: lastSeq }, (_, i) => i + 1))
    es.close()
  })

  it('5. a 413 reaches a client that is still sending a large body (keep-alive and chunked)', async () => {
    const port = Number(new URL(server.url).port)
    const chunk = Buffer.alloc(64 * 1024, 'a')
    for (const framing of ['content-length', 'chunked'] as const) {
      const res = await rawExchange(port, (s) => {
        const size = 8 * MiB
        s.write(`POST /v1/workflows HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${t.key}\r\nContent-Type: application/json\r\nConnection: keep-alive\r\n`
          + (framing === 'chunked' ? 'Transfer-Encoding: chunked\r\n\r\n' : `Content-Length: ${size}\r\n\r\n`))
        let sent = 0
        const pump = () => {
          while (sent < size && !s.destroyed) {
            const ok = s.write(framing === 'chunked' ? Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]) : chunk)
            sent += chunk.length
            if (!ok) return void s.once('drain', pump)
          }
          if (framing === 'chunked' && !s.destroyed) s.write('0\r\n\r\n')
        }
        s.on('error', () => {})
        pump()
      })
      expect(res.text, `${framing}: ${res.error}`).toMatch(/^HTTP\/1\.1 413 /)
      expect(res.text.toLowerCase()).toContain('connection: close')
      const body = res.text.slice(res.text.indexOf('\r\n\r\n') + 4)
      expect(body).toContain('"payload_too_large"')
    }
  })

  it('6. URLs over 8 KiB get 414 with a JSON error, also past 16 KiB; oversized headers get 431', async () => {
    for (const len of [9 * 1024, 20 * 1024]) {
      const res = await fetch(`${server.url}/v1/runs?x=${'a'.repeat(len)}`, { headers: auth() })
      expect(res.status, `URL of ${len} bytes`).toBe(414)
      expect((await res.json()).error.code).toBe('uri_too_long')
    }
    const port = Number(new URL(server.url).port)
    const big = await rawExchange(port, (s) => s.write(`GET /v1/runs HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${'b'.repeat(20 * 1024)}\r\n\r\n`), 5_000)
    expect(big.text).toMatch(/^HTTP\/1\.1 431 /)
  })
})

describe('reliability: a never-reading SSE subscriber on Deno', () => {
  it('is ended by bytes and resumes with Last-Event-ID without loss', async () => {
    const deno = await launchDeno({ RUNRELAY_WS_MAX_BUFFERED_BYTES: String(SSE_LIMIT), RUNRELAY_RATE_LIMIT_PER_MINUTE: '0' })
    try {
      const r = await neverReadingSse(deno, 'sse-slow-deno')
      figures.sse_never_reading_deno = { limit_bytes: SSE_LIMIT, ...r }
      expect(r.endedAfterResume, 'the server ended the stream').toBe(true)
      expect(r.check).toMatchObject({ lost: 0, duplicated: 0, reordered: 0 })
    } finally {
      await deno.stop()
      recordFigures('hardening', figures)
    }
  }, 120_000)
})
