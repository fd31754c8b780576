/**
 * Node's outbound transport (src/runtime/node/pinned-transport.ts): sockets connect to the
 * addresses the guard's resolver answered, a private address is refused as the socket connects
 * (DNS rebinding: a public answer to the check, a private one to the connection), and a name is
 * looked up once per TTL instead of once per request. Real sockets to loopback servers; only the
 * DNS answers are made up (names under .runrelay.test, unknown to this machine's resolver).
 */
import { createServer, type Server } from 'node:http'
import { brotliCompressSync, deflateSync, gzipSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createGuardedFetch, isOutboundUrlError } from '../../src/core/outbound.ts'
import { cachedResolver, pinnedTransport } from '../../src/runtime/node/pinned-transport.ts'

let server: Server
let port = 0
const hosts: string[] = []

beforeAll(async () => {
  server = createServer((req, res) => {
    hosts.push(req.headers.host ?? '')
    const path = req.url ?? '/'
    if (path.startsWith('/coded/')) {
      // Codings applied in the order the header lists them (an unknown one is only named).
      const codings = decodeURIComponent(path.slice('/coded/'.length))
      const apply = { gzip: gzipSync, deflate: deflateSync, br: brotliCompressSync } as Record<string, (b: Buffer) => Buffer>
      const body = codings.split(',').map((c) => c.trim()).reduce<Buffer>((b, c) => apply[c]?.(b) ?? b, Buffer.from('{"layers":"undone"}'))
      res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': codings })
      return res.end(body)
    }
    if (path === '/gzip') { res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' }); return res.end(gzipSync('{"zipped":true}')) }
    if (path === '/empty') { res.writeHead(204); return res.end() }
    if (path === '/moved') { res.writeHead(302, { location: '/elsewhere' }); return res.end() }
    if (path === '/echo') { let body = ''; req.on('data', (c) => (body += c)); req.on('end', () => res.end(JSON.stringify({ method: req.method, body, type: req.headers['content-type'], agent: req.headers['user-agent'] }))); return }
    if (path === '/hang') return // no answer at all
    if (path === '/cut') { res.writeHead(200, { 'content-length': '100' }); res.write('{"partial":'); setTimeout(() => res.socket?.destroy(), 20); return }
    if (path === '/slow') { res.writeHead(200); res.write('{"partial":'); return } // never ends
    if (path === '/big') { res.writeHead(200); const chunk = Buffer.alloc(64 * 1024, 'x'); let n = 0; const more = () => { while (n++ < 1_000) if (!res.write(chunk)) return res.once('drain', more); res.end() }; return more() }
    res.end('{"ok":true}')
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  port = (server.address() as { port: number }).port
})
afterAll(() => new Promise<void>((r) => server.close(() => r())))

describe('pinned transport', () => {
  it('connects to the address the guard resolved, under the name the request used', async () => {
    const asked: string[] = []
    const t = pinnedTransport({ allowPrivate: true, resolve: async (h) => { asked.push(h); return ['127.0.0.1'] } })
    try {
      hosts.length = 0
      const res = await t.fetch(`http://svc.runrelay.test:${port}/jobs/1`)
      expect(await res.json()).toEqual({ ok: true })
      expect(hosts).toEqual([`svc.runrelay.test:${port}`])
      expect(asked).toEqual(['svc.runrelay.test'])
    } finally { await t.close() }
  })

  it('refuses a private address as the socket connects, though the check saw a public one (rebinding)', async () => {
    // No answer is kept (TTL 0): the check gets the first answer, the connection the second.
    const answers = [['93.184.216.34'], ['127.0.0.1']]
    let calls = 0
    const t = pinnedTransport({ allowPrivate: false, ttlMs: 0, resolve: async () => answers[Math.min(calls++, 1)]! })
    const guarded = createGuardedFetch({ allowPrivate: false, resolve: t.resolveHost, fetch: t.fetch, timeoutMs: 5_000 })
    try {
      hosts.length = 0
      const err = await guarded(`http://rebind.runrelay.test:${port}/jobs`, { method: 'POST', body: '{}' }).then(() => null, (e: unknown) => e)
      expect(isOutboundUrlError(err), String(err)).toBe(true)
      expect((err as { reason: string }).reason).toBe('resolved_private_address')
      expect(calls).toBe(2)
      expect(hosts, 'the private server was never reached').toEqual([])
    } finally { await t.close() }
  })

  it('looks a name up once for many requests, concurrent or not, within its TTL', async () => {
    let calls = 0
    const t = pinnedTransport({ allowPrivate: true, resolve: async (h) => { calls++; await new Promise((r) => setTimeout(r, 20)); return h === 'many.runrelay.test' ? ['127.0.0.1'] : [] } })
    try {
      hosts.length = 0
      await Promise.all(Array.from({ length: 20 }, () => t.fetch(`http://many.runrelay.test:${port}/jobs/2`).then((r) => r.text())))
      for (let i = 0; i < 20; i++) await (await t.fetch(`http://many.runrelay.test:${port}/jobs/3`)).text()
      expect(hosts).toHaveLength(40)
      expect(calls).toBe(1)
    } finally { await t.close() }
  })
})

describe('pinned transport: what the guard and the connectors rely on of fetch', () => {
  const t = pinnedTransport({ allowPrivate: true })
  afterAll(() => t.close())
  const at = (path: string) => `http://127.0.0.1:${port}${path}`

  it('sends the method, body and headers; decodes gzip; gives 204 no body; hands a redirect back unfollowed', async () => {
    const echo = await (await t.fetch(at('/echo'), { method: 'POST', body: new TextEncoder().encode('{"a":1}').buffer, headers: new Headers({ 'content-type': 'application/json' }) })).json()
    expect(echo).toEqual({ method: 'POST', body: '{"a":1}', type: 'application/json', agent: 'runrelay' })
    expect(await (await t.fetch(at('/gzip'))).json()).toEqual({ zipped: true })
    const empty = await t.fetch(at('/empty'))
    expect([empty.status, empty.body]).toEqual([204, null])
    const moved = await t.fetch(at('/moved'), { redirect: 'manual' })
    expect([moved.status, moved.headers.get('location')]).toEqual([302, '/elsewhere'])
  })

  it('undoes several content codings in turn, as Node\'s fetch does, and refuses more than five', async () => {
    for (const codings of ['gzip, br', 'deflate,gzip', 'br, gzip, deflate', 'gzip, x-unknown']) {
      const url = at(`/coded/${encodeURIComponent(codings)}`)
      const ours = await t.fetch(url), node = await fetch(url)
      expect(Buffer.from(await ours.arrayBuffer()), codings).toEqual(Buffer.from(await node.arrayBuffer()))
    }
    expect(await (await t.fetch(at(`/coded/${encodeURIComponent('gzip, br')}`))).json()).toEqual({ layers: 'undone' })
    const six = await t.fetch(at(`/coded/${encodeURIComponent('gzip,gzip,gzip,gzip,gzip,gzip')}`)).then(() => null, (e: unknown) => e)
    expect(six).toBeInstanceOf(TypeError)
  })

  it('fails as fetch does: a refused connection is a TypeError, an abort is the signal\'s reason, before and during the body', async () => {
    const refused = await t.fetch('http://127.0.0.1:1/').then(() => null, (e: unknown) => e)
    expect(refused).toBeInstanceOf(TypeError)
    const early = await t.fetch(at('/hang'), { signal: AbortSignal.timeout(50) }).then(() => null, (e: unknown) => e)
    expect((early as Error).name).toBe('TimeoutError')
    const ctrl = new AbortController()
    const res = await t.fetch(at('/slow'), { signal: ctrl.signal })
    const reader = res.body!.getReader()
    expect(new TextDecoder().decode((await reader.read()).value)).toBe('{"partial":')
    ctrl.abort(new DOMException('gone', 'TimeoutError'))
    await expect(reader.read()).rejects.toBeTruthy()
  })

  it('reads an answer whole as a Response would: once, or twice through clone; a cut body rejects', async () => {
    const whole = await t.fetch(at('/jobs/1'))
    expect([whole.ok, whole.bodyUsed, whole.url]).toEqual([true, false, at('/jobs/1')])
    const copy = whole.clone()
    expect(await whole.json()).toEqual({ ok: true })
    expect(whole.bodyUsed).toBe(true)
    await expect(whole.text()).rejects.toBeInstanceOf(TypeError)
    expect(new TextDecoder().decode(await copy.arrayBuffer())).toBe('{"ok":true}')
    // A body begun as a stream reads on as one.
    const streamed = await t.fetch(at('/jobs/2'))
    expect(await new Response(streamed.body).text()).toBe('{"ok":true}')
    await expect(streamed.text()).rejects.toBeInstanceOf(TypeError)
    const cut = await t.fetch(at('/cut'))
    await expect(cut.text()).rejects.toBeTruthy()
  })

  it('streams a large answer and stops reading when the reader cancels', async () => {
    const res = await t.fetch(at('/big'))
    const reader = res.body!.getReader()
    let read = 0
    while (read < 1_000_000) read += (await reader.read()).value!.byteLength
    await reader.cancel()
    expect(read).toBeLessThan(64 * 1024 * 1_000)
  })
})

describe('cachedResolver', () => {
  it('keeps an answer for its TTL, asks again after it, and never keeps a failure', async () => {
    let now = 1_000, calls = 0, fail = false
    const resolve = cachedResolver(async (h) => { calls++; if (fail) throw new Error(`ENOTFOUND ${h}`); return [`93.184.216.${calls}`] }, 10_000, () => now)
    expect(await resolve('api.example.com')).toEqual(['93.184.216.1'])
    now += 9_999
    expect(await resolve('API.example.com.')).toEqual(['93.184.216.1'])
    now += 1
    expect(await resolve('api.example.com')).toEqual(['93.184.216.2'])
    now += 10_000
    fail = true
    await expect(resolve('api.example.com')).rejects.toThrow(/ENOTFOUND/)
    fail = false
    expect(await resolve('api.example.com')).toEqual(['93.184.216.4'])
    expect(calls).toBe(4)
  })
})
