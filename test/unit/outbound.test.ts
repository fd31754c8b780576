import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterEach, describe, expect, it, vi } from 'vitest'
import {
  OutboundUrlError,
  checkOutboundUrl,
  createGuardedFetch,
  settleResponse,
  type ResolveHost,
} from '../../src/core/outbound.ts'
import { isPrivateAddress, parseIPv4, parseIPv6 } from '../../src/core/addresses.ts'

const PRIVATE = [
  // IPv4
  '127.0.0.1', '127.255.255.254', '0.0.0.0', '0.1.2.3', '10.0.0.0', '10.255.255.255',
  '172.16.0.0', '172.31.255.255', '192.168.0.1', '192.168.255.255', '100.64.0.1', '100.127.255.255',
  '169.254.169.254', '169.254.0.1', '198.18.0.1', '198.19.255.255', '224.0.0.1', '239.255.255.250',
  '240.0.0.1', '255.255.255.255', '192.0.0.170', '192.0.2.1', '198.51.100.7', '203.0.113.9',
  // IPv4 in other forms
  '2130706433', '0177.0.0.1', '0x7f.1', '0x7f000001', '127.1', '017700000001', '0xa9fea9fe',
  // IPv6
  '::1', '::', '[::1]', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1', '::ffff:7f00:1', '[::ffff:127.0.0.1]',
  '::127.0.0.1', '::7f00:1', '::ffff:10.1.2.3', '::ffff:169.254.169.254', '::ffff:0:127.0.0.1',
  'fc00::1', 'fd12:3456:789a::1', 'fe80::1', 'fe80::1%eth0', 'febf:ffff::1', 'fec0::1', 'ff02::1', 'ff00::',
  '64:ff9b::127.0.0.1', '64:ff9b::a9fe:a9fe', '64:ff9b:1::1', '2002:7f00:1::', '2002:c0a8:101::1',
  '2001:0:4136:e378:8000:63bf:3fff:fdd2', '2001:db8::1', '100::1',
  // not an address: fail closed
  'not-an-ip', '', '1.2.3.4.5', '256.1.1.1', '1::2::3', 'gggg::1',
]

const PUBLIC = [
  '93.184.216.34', '8.8.8.8', '1.1.1.1', '172.15.255.255', '172.32.0.0', '100.63.255.255', '100.128.0.0',
  '169.253.255.255', '169.255.0.0', '192.167.255.255', '192.169.0.0', '198.17.255.255', '198.20.0.0',
  '223.255.255.255', '11.0.0.1', '9.255.255.255', '1554196514' /* 92.163.34.34 */,
  '2606:2800:220:1::', '2606:2800:220:1:248:1893:25c8:1946', '[2606:2800:220:1::]', '2001:4860:4860::8888',
  '::ffff:93.184.216.34', '::ffff:5db8:d822', '64:ff9b::8.8.8.8', '2002:808:808::1', '2a00:1450:4001:80b::200e',
]

describe('isPrivateAddress', () => {
  it.each(PRIVATE)('refuses %s', (ip) => {
    expect(isPrivateAddress(ip)).toBe(true)
  })
  it.each(PUBLIC)('allows %s', (ip) => {
    expect(isPrivateAddress(ip)).toBe(false)
  })
})

describe('parsers', () => {
  it('parses IPv4 like the URL parser', () => {
    expect(parseIPv4('127.0.0.1')).toBe(0x7f000001)
    expect(parseIPv4('2130706433')).toBe(0x7f000001)
    expect(parseIPv4('0177.0.0.1')).toBe(0x7f000001)
    expect(parseIPv4('0x7f.1')).toBe(0x7f000001)
    expect(parseIPv4('127.0.0.1.')).toBe(0x7f000001)
    expect(parseIPv4('4294967295')).toBe(0xffffffff)
    expect(parseIPv4('4294967296')).toBeNull()
    expect(parseIPv4('08.1.1.1')).toBeNull()
    expect(parseIPv4('example.com')).toBeNull()
  })
  it('parses IPv6 with compression and embedded IPv4', () => {
    expect(Array.from(parseIPv6('::ffff:127.0.0.1')!)).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 127, 0, 0, 1])
    expect(Array.from(parseIPv6('::127.0.0.1')!)).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 127, 0, 0, 1])
    expect(Array.from(parseIPv6('1:2:3:4:5:6:7:8')!)).toEqual([0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8])
    expect(parseIPv6('1:2:3:4:5:6:7:8:9')).toBeNull()
    expect(parseIPv6('1:2:3:4:5:6:7::8')).toBeNull()
    expect(parseIPv6(':::')).toBeNull()
  })
})

async function refusal(p: Promise<unknown>): Promise<OutboundUrlError> {
  try {
    await p
  } catch (err) {
    expect(err).toBeInstanceOf(OutboundUrlError)
    expect((err as OutboundUrlError).code).toBe('outbound_url_refused')
    return err as OutboundUrlError
  }
  throw new Error('expected an OutboundUrlError')
}

const fakeDns: Record<string, string[]> = {
  'public.example': ['93.184.216.34'],
  'dual.example': ['93.184.216.34', '2606:2800:220:1::'],
  'rebind.example': ['93.184.216.34', '10.0.0.5'],
  'meta.example': ['169.254.169.254'],
  'v6local.example': ['::1'],
  'mapped.example': ['::ffff:127.0.0.1'],
  'empty.example': [],
  'garbage.example': ['what'],
}
const resolve: ResolveHost = async (host) => {
  const key = host.replace(/\.$/, '')
  if (!(key in fakeDns)) throw new Error(`ENOTFOUND ${host}`)
  return fakeDns[key]
}

describe('checkOutboundUrl', () => {
  const refused: Array<[string, string]> = [
    ['ftp://example.com/', 'scheme'],
    ['file:///etc/passwd', 'scheme'],
    ['gopher://example.com/', 'scheme'],
    ['javascript:alert(1)', 'scheme'],
    ['not a url', 'invalid_url'],
    ['/relative', 'invalid_url'],
    ['http://user:hunter2@example.com/', 'credentials'],
    ['http://hunter2@example.com/', 'credentials'],
    ['https://example.com:hunter2@127.0.0.1/', 'credentials'],
    ['http://localhost/', 'blocked_hostname'],
    ['http://LOCALHOST:8080/', 'blocked_hostname'],
    ['http://localhost./', 'blocked_hostname'],
    ['http://localhost../', 'blocked_hostname'],
    ['http://api.localhost/', 'blocked_hostname'],
    ['http://printer.local/', 'blocked_hostname'],
    ['http://service.internal/', 'blocked_hostname'],
    ['http://metadata.google.internal/computeMetadata/v1/', 'blocked_hostname'],
    ['http://metadata.google.internal./', 'blocked_hostname'],
    ['http://router.home.arpa/', 'blocked_hostname'],
    ['http://metadata/', 'blocked_hostname'],
    ['http://127.0.0.1/', 'private_address'],
    ['http://127.0.0.1./', 'private_address'],
    ['http://127.8.9.10:3000/x', 'private_address'],
    ['http://0.0.0.0/', 'private_address'],
    ['http://10.1.2.3/', 'private_address'],
    ['http://172.16.0.1/', 'private_address'],
    ['http://172.31.255.255/', 'private_address'],
    ['http://192.168.1.1/', 'private_address'],
    ['http://100.64.0.1/', 'private_address'],
    ['http://169.254.169.254/latest/meta-data/', 'private_address'],
    ['http://198.18.0.1/', 'private_address'],
    ['http://224.0.0.1/', 'private_address'],
    ['http://255.255.255.255/', 'private_address'],
    ['http://2130706433/', 'private_address'],
    ['http://0177.0.0.1/', 'private_address'],
    ['http://0x7f.1/', 'private_address'],
    ['http://0x7f000001/', 'private_address'],
    ['http://127.1/', 'private_address'],
    ['http://0xa9.0xfe.0xa9.0xfe/', 'private_address'],
    ['http://１２７.０.０.１/', 'private_address'], // full-width digits, IDNA-mapped
    ['http://[::1]/', 'private_address'],
    ['http://[::]/', 'private_address'],
    ['http://[::ffff:127.0.0.1]/', 'private_address'],
    ['http://[::ffff:7f00:1]/', 'private_address'],
    ['http://[::127.0.0.1]/', 'private_address'],
    ['http://[::ffff:169.254.169.254]/', 'private_address'],
    ['http://[fc00::1]/', 'private_address'],
    ['http://[fdff:ffff::1]/', 'private_address'],
    ['http://[fe80::1]/', 'private_address'],
    ['http://[ff02::1]/', 'private_address'],
    ['http://[64:ff9b::10.0.0.1]/', 'private_address'],
    ['http://[2002:a9fe:a9fe::]/', 'private_address'],
  ]
  it.each(refused)('refuses %s (%s)', async (url, reason) => {
    const err = await refusal(checkOutboundUrl(url, { allowPrivate: false }))
    expect(err.reason).toBe(reason)
    expect(err.message).not.toContain('hunter2')
    expect(err.url ?? '').not.toContain('hunter2')
  })

  it('refuses names resolving to any private address', async () => {
    for (const [host, reason] of [
      ['rebind.example', 'resolved_private_address'],
      ['meta.example', 'resolved_private_address'],
      ['v6local.example', 'resolved_private_address'],
      ['mapped.example', 'resolved_private_address'],
      ['garbage.example', 'resolved_private_address'],
      ['empty.example', 'resolve_failed'],
      ['nxdomain.example', 'resolve_failed'],
    ] as const) {
      const err = await refusal(checkOutboundUrl(`https://${host}/path`, { allowPrivate: false, resolve }))
      expect(err.reason, host).toBe(reason)
    }
  })

  it('allows public literals and names resolving only to public addresses', async () => {
    for (const url of [
      'http://93.184.216.34/',
      'https://[2606:2800:220:1::]/',
      'http://172.15.255.255/',
      'http://172.32.0.0/',
      'https://public.example/x?y=1',
      'https://public.example./',
      'https://dual.example:8443/',
    ]) {
      const out = await checkOutboundUrl(url, { allowPrivate: false, resolve })
      expect(out).toBeInstanceOf(URL)
      expect(out.href).toBe(new URL(url).href)
    }
  })

  it('without resolve only checks the literal host', async () => {
    await expect(checkOutboundUrl('https://rebind.example/', { allowPrivate: false })).resolves.toBeInstanceOf(URL)
    await refusal(checkOutboundUrl('http://10.0.0.1/', { allowPrivate: false }))
  })

  it('allowPrivate lets every http(s) URL through, but not other schemes or credentials', async () => {
    for (const url of ['http://127.0.0.1:9/', 'http://localhost/', 'http://[::1]/', 'http://169.254.169.254/', 'https://meta.example/']) {
      await expect(checkOutboundUrl(url, { allowPrivate: true, resolve })).resolves.toBeInstanceOf(URL)
    }
    expect((await refusal(checkOutboundUrl('file:///etc/passwd', { allowPrivate: true }))).reason).toBe('scheme')
    const creds = await refusal(checkOutboundUrl('http://u:secret@localhost/', { allowPrivate: true }))
    expect(creds.reason).toBe('credentials')
    expect(creds.url).toBe('http://localhost/')
    expect(creds.message).not.toContain('secret')
  })

  it('accepts URL objects', async () => {
    await refusal(checkOutboundUrl(new URL('http://0x7f.1/'), { allowPrivate: false }))
    await expect(checkOutboundUrl(new URL('https://public.example/'), { allowPrivate: false, resolve })).resolves.toBeInstanceOf(URL)
  })
})

// ---------------------------------------------------------------------------------------------

interface Call { url: string; method: string; body: string | null; headers: Record<string, string>; redirect?: RequestRedirect }

/** An injected fetch: answers from a route table and records every call. */
function fakeFetch(routes: Record<string, (call: Call) => Response>) {
  const calls: Call[] = []
  const f = (async (input: RequestInfo | URL, init?: RequestInit) => {
    const req = new Request(input, init)
    const call: Call = {
      url: req.url,
      method: req.method,
      body: req.body ? await req.text() : null,
      headers: Object.fromEntries(req.headers),
      redirect: init?.redirect,
    }
    calls.push(call)
    const route = routes[req.url]
    if (!route) throw new TypeError(`fetch failed: no route for ${req.url}`)
    return route(call)
  }) as typeof fetch
  return { fetch: f, calls }
}

const redirect = (status: number, location: string) => () => new Response(null, { status, headers: { location } })
const ok = (text = 'ok') => () => new Response(text, { status: 200 })

describe('createGuardedFetch (injected fetch)', () => {
  it('refuses a private first hop without calling fetch', async () => {
    const fake = fakeFetch({})
    const gf = createGuardedFetch({ allowPrivate: false, fetch: fake.fetch })
    const err = await refusal(gf('http://169.254.169.254/latest/meta-data/'))
    expect(err.reason).toBe('private_address')
    expect(fake.calls).toHaveLength(0)
  })

  it('refuses a redirect to the metadata address and never fetches it', async () => {
    const fake = fakeFetch({
      'https://public.example/start': redirect(302, 'http://169.254.169.254/'),
      'http://169.254.169.254/': ok('secret'),
    })
    const gf = createGuardedFetch({ allowPrivate: false, resolve, fetch: fake.fetch })
    const err = await refusal(gf('https://public.example/start'))
    expect(err.reason).toBe('private_address')
    expect(fake.calls.map((c) => c.url)).toEqual(['https://public.example/start'])
    expect(fake.calls[0].redirect).toBe('manual')
  })

  it.each([
    ['http://[::1]/', 'private_address'],
    ['http://2130706433/', 'private_address'],
    ['http://localhost/', 'blocked_hostname'],
    ['https://rebind.example/', 'resolved_private_address'],
    ['file:///etc/passwd', 'scheme'],
    ['http://u:p@public.example/', 'credentials'],
  ])('refuses a redirect to %s', async (location, reason) => {
    const fake = fakeFetch({ 'https://public.example/': redirect(307, location) })
    const gf = createGuardedFetch({ allowPrivate: false, resolve, fetch: fake.fetch })
    expect((await refusal(gf('https://public.example/'))).reason).toBe(reason)
    expect(fake.calls).toHaveLength(1)
  })

  it('follows public redirects, relative Locations included', async () => {
    const fake = fakeFetch({
      'https://public.example/a': redirect(301, '/b'),
      'https://public.example/b': redirect(302, 'https://dual.example/c'),
      'https://dual.example/c': ok('done'),
    })
    const gf = createGuardedFetch({ allowPrivate: false, resolve, fetch: fake.fetch })
    const res = await gf('https://public.example/a')
    expect(res).toBeInstanceOf(Response)
    expect(res.status).toBe(200)
    expect(res.redirected).toBe(true)
    expect(await res.text()).toBe('done')
    expect(fake.calls.map((c) => c.url)).toEqual(['https://public.example/a', 'https://public.example/b', 'https://dual.example/c'])
  })

  it('sends what a Request built from the same init would: method, headers, body bytes, and the same refusals', async () => {
    // The guard normalises string and byte bodies itself (no Request per call); a Request is the oracle.
    const sent: Array<{ method: string; headers: Record<string, string>; body: string | null }> = []
    const raw = (async (_input: RequestInfo | URL, init?: RequestInit) => {
      const b = init?.body
      const body = b === null || b === undefined ? null : typeof b === 'string' ? b : new TextDecoder().decode(b as Uint8Array)
      sent.push({ method: String(init?.method), headers: Object.fromEntries(new Headers(init?.headers)), body })
      return new Response('ok')
    }) as typeof fetch
    const gf = createGuardedFetch({ allowPrivate: false, resolve, fetch: raw })
    const url = 'https://public.example/x'
    const bytes = new TextEncoder().encode('{"b":2}')
    const inits: RequestInit[] = [
      {}, { method: 'post', body: 'plain' }, { method: 'Put', body: '{"a":1}', headers: { 'Content-Type': 'application/json' } },
      { method: 'patch', body: bytes }, { method: 'delete', body: bytes.buffer }, { method: 'OPTIONS' }, { method: 'purge' },
      { method: 'POST', body: new Uint8Array(bytes.buffer, 1, 3), headers: [['x-a', 'one'], ['x-a', 'two']] },
    ]
    for (const init of inits) {
      sent.length = 0
      const expected = new Request(url, init)
      await gf(url, init)
      expect(sent[0], JSON.stringify(init)).toEqual({
        method: expected.method,
        headers: Object.fromEntries(expected.headers),
        body: expected.body ? await expected.text() : null,
      })
    }
    for (const init of [{ method: 'GET', body: 'x' }, { method: 'head', body: 'x' }, { method: 'TRACE' }, { method: 'connect' }, { method: 'bad method' }, { method: '' }]) {
      expect(() => new Request(url, init), JSON.stringify(init)).toThrow(TypeError)
      await expect(gf(url, init), JSON.stringify(init)).rejects.toBeInstanceOf(TypeError)
    }
  })

  it('replays a byte body on 307 though the caller changed its buffer after the call', async () => {
    const fake = fakeFetch({ 'https://public.example/307': redirect(307, '/done'), 'https://public.example/done': ok() })
    const gf = createGuardedFetch({ allowPrivate: false, resolve, fetch: fake.fetch })
    const body = new TextEncoder().encode('first')
    const pending = gf('https://public.example/307', { method: 'POST', body })
    body.set(new TextEncoder().encode('XXXXX'))
    await pending
    expect(fake.calls.map((c) => c.body)).toEqual(['first', 'first'])
  })

  it('303 turns into GET without body; 307/308 keep method and body', async () => {
    const fake = fakeFetch({
      'https://public.example/303': redirect(303, '/done'),
      'https://public.example/307': redirect(307, '/done'),
      'https://public.example/308': redirect(308, '/done'),
      'https://public.example/302': redirect(302, '/done'),
      'https://public.example/done': ok(),
    })
    const gf = createGuardedFetch({ allowPrivate: false, resolve, fetch: fake.fetch })
    const init = { method: 'POST', body: '{"a":1}', headers: { 'content-type': 'application/json', 'x-trace': 't1' } }

    await gf('https://public.example/303', init)
    expect(fake.calls[1]).toMatchObject({ method: 'GET', body: null })
    expect(fake.calls[1].headers['content-type']).toBeUndefined()
    expect(fake.calls[1].headers['x-trace']).toBe('t1')

    for (const s of ['307', '308']) {
      fake.calls.length = 0
      await gf(`https://public.example/${s}`, init)
      expect(fake.calls[1]).toMatchObject({ method: 'POST', body: '{"a":1}' })
      expect(fake.calls[1].headers['content-type']).toBe('application/json')
    }

    fake.calls.length = 0
    await gf('https://public.example/307', { method: 'PUT', body: 'x' })
    expect(fake.calls[1]).toMatchObject({ method: 'PUT', body: 'x' })

    fake.calls.length = 0
    await gf('https://public.example/302', init) // fetch standard: POST + 301/302 -> GET
    expect(fake.calls[1]).toMatchObject({ method: 'GET', body: null })
  })

  it('keeps the body of a Request input across 307', async () => {
    const fake = fakeFetch({ 'https://public.example/307': redirect(307, '/done'), 'https://public.example/done': ok() })
    const gf = createGuardedFetch({ allowPrivate: false, resolve, fetch: fake.fetch })
    await gf(new Request('https://public.example/307', { method: 'POST', body: 'payload' }))
    expect(fake.calls.map((c) => [c.method, c.body])).toEqual([['POST', 'payload'], ['POST', 'payload']])
  })

  it('drops Authorization and Cookie on a cross-origin hop only', async () => {
    const fake = fakeFetch({
      'https://public.example/a': redirect(307, '/b'),
      'https://public.example/b': redirect(307, 'https://dual.example/c'),
      'https://dual.example/c': ok(),
    })
    const gf = createGuardedFetch({ allowPrivate: false, resolve, fetch: fake.fetch })
    await gf('https://public.example/a', { headers: { authorization: 'Bearer s3cret', cookie: 'a=b', 'x-keep': '1' } })
    expect(fake.calls[1].headers.authorization).toBe('Bearer s3cret')
    expect(fake.calls[2].headers.authorization).toBeUndefined()
    expect(fake.calls[2].headers.cookie).toBeUndefined()
    expect(fake.calls[2].headers['x-keep']).toBe('1')
  })

  it('stops after maxRedirects', async () => {
    const fake = fakeFetch({ 'https://public.example/loop': redirect(302, '/loop') })
    const gf = createGuardedFetch({ allowPrivate: false, resolve, fetch: fake.fetch, maxRedirects: 3 })
    expect((await refusal(gf('https://public.example/loop'))).reason).toBe('too_many_redirects')
    expect(fake.calls).toHaveLength(4)

    const fake5 = fakeFetch({ 'https://public.example/loop': redirect(302, '/loop') })
    await refusal(createGuardedFetch({ allowPrivate: false, resolve, fetch: fake5.fetch })('https://public.example/loop'))
    expect(fake5.calls).toHaveLength(6) // default 5 redirects
  })

  it('honours redirect: manual and redirect: error from the caller', async () => {
    const fake = fakeFetch({ 'https://public.example/r': redirect(302, 'http://10.0.0.1/') })
    const gf = createGuardedFetch({ allowPrivate: false, resolve, fetch: fake.fetch })
    const res = await gf('https://public.example/r', { redirect: 'manual' })
    expect(res.status).toBe(302)
    expect(res.headers.get('location')).toBe('http://10.0.0.1/')
    expect((await refusal(gf('https://public.example/r', { redirect: 'error' }))).reason).toBe('redirect_not_allowed')
  })

  it('returns a 3xx without Location as is', async () => {
    const fake = fakeFetch({ 'https://public.example/nm': () => new Response('x', { status: 302 }) })
    const res = await createGuardedFetch({ allowPrivate: false, resolve, fetch: fake.fetch })('https://public.example/nm')
    expect(res.status).toBe(302)
    expect(await res.text()).toBe('x')
  })

  it('with allowPrivate follows redirects anywhere', async () => {
    const fake = fakeFetch({ 'http://127.0.0.1/a': redirect(302, 'http://169.254.169.254/'), 'http://169.254.169.254/': ok('meta') })
    const res = await createGuardedFetch({ allowPrivate: true, fetch: fake.fetch })('http://127.0.0.1/a')
    expect(await res.text()).toBe('meta')
  })

  it('refusals are OutboundUrlError, not TypeError', async () => {
    const gf = createGuardedFetch({ allowPrivate: true, fetch: fakeFetch({}).fetch })
    const err = await refusal(gf('http://user:pw@example.com/'))
    expect(err).not.toBeInstanceOf(TypeError)
  })

  it('ends its deadline timer once the response is settled, or at once when the call fails: no timer outlives a request', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] })
    try {
      const gf = createGuardedFetch({ allowPrivate: true, fetch: fakeFetch({ 'https://a.example/x': () => new Response('{}') }).fetch, timeoutMs: 60_000 })
      const res = await gf('https://a.example/x')
      // The deadline still covers the body until the caller has read it.
      expect(vi.getTimerCount()).toBe(1)
      expect(await res.text()).toBe('{}')
      settleResponse(res)
      expect(vi.getTimerCount()).toBe(0)
      await expect(gf('https://a.example/missing')).rejects.toThrow(/no route/)
      expect(vi.getTimerCount()).toBe(0)
      // A response of another fetch is left alone.
      settleResponse(new Response('x'))
    } finally {
      vi.useRealTimers()
    }
  })

  it('times out a slow DNS resolution too', async () => {
    const slow: ResolveHost = () => new Promise(() => {})
    const gf = createGuardedFetch({ allowPrivate: false, resolve: slow, fetch: fakeFetch({}).fetch, timeoutMs: 50 })
    await expect(gf('https://public.example/')).rejects.toMatchObject({ name: 'TimeoutError' })
  })
})

// ---------------------------------------------------------------------------------------------

describe('createGuardedFetch (real loopback server)', () => {
  let server: Server | undefined
  afterEach(async () => {
    if (!server) return
    server.closeAllConnections()
    await new Promise((r) => server!.close(r))
    server = undefined
  })

  async function listen(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
    server = createServer(handler)
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r))
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  }

  const readBody = (req: IncomingMessage) =>
    new Promise<string>((r) => { let s = ''; req.setEncoding('utf8'); req.on('data', (c) => (s += c)); req.on('end', () => r(s)) })

  it('refuses the loopback server itself when allowPrivate is false', async () => {
    const base = await listen((_req, res) => res.end('should not be reached'))
    const err = await refusal(createGuardedFetch({ allowPrivate: false })(`${base}/`))
    expect(err.reason).toBe('private_address')
  })

  it('follows real redirects with allowPrivate (303 -> GET, 307 keeps POST body)', async () => {
    const base = await listen(async (req, res) => {
      const body = await readBody(req)
      if (req.url === '/303') { res.writeHead(303, { location: '/echo' }); res.end(); return }
      if (req.url === '/307') { res.writeHead(307, { location: `${base}/echo` }); res.end(); return }
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify({ method: req.method, body }))
    })
    const gf = createGuardedFetch({ allowPrivate: true })
    const r303 = await gf(`${base}/303`, { method: 'POST', body: 'hello' })
    expect(await r303.json()).toEqual({ method: 'GET', body: '' })
    expect(r303.url).toBe(`${base}/echo`)
    const r307 = await gf(`${base}/307`, { method: 'POST', body: 'hello' })
    expect(await r307.json()).toEqual({ method: 'POST', body: 'hello' })
  })

  it('refuses a real redirect from a "public" first hop to a private address', async () => {
    // First hop: a name the fake DNS calls public, routed to the loopback server by the injected fetch.
    const base = await listen((req, res) => {
      if (req.url === '/to-meta') { res.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data/' }); res.end(); return }
      if (req.url === '/to-loopback') { res.writeHead(307, { location: `${base}/secret` }); res.end(); return }
      res.end('secret')
    })
    const hits: string[] = []
    const routed = ((input: RequestInfo | URL, init?: RequestInit) => {
      const u = new URL(String(input))
      hits.push(u.href)
      if (u.hostname !== 'public.example') throw new Error(`unexpected fetch of ${u.href}`)
      return fetch(`${base}${u.pathname}`, init)
    }) as typeof fetch
    const gf = createGuardedFetch({ allowPrivate: false, resolve, fetch: routed })
    expect((await refusal(gf('https://public.example/to-meta'))).reason).toBe('private_address')
    expect((await refusal(gf('https://public.example/to-loopback'))).reason).toBe('private_address')
    expect(hits).toEqual(['https://public.example/to-meta', 'https://public.example/to-loopback'])
  })

  it('times out against a hanging server', async () => {
    const base = await listen(() => { /* never answers */ })
    const gf = createGuardedFetch({ allowPrivate: true, timeoutMs: 150 })
    const started = Date.now()
    await expect(gf(`${base}/hang`)).rejects.toMatchObject({ name: 'TimeoutError' })
    expect(Date.now() - started).toBeLessThan(5_000)
  })

  it('combines the timeout with a caller signal', async () => {
    const base = await listen(() => { /* never answers */ })
    const gf = createGuardedFetch({ allowPrivate: true, timeoutMs: 10_000 })
    const ctrl = new AbortController()
    setTimeout(() => ctrl.abort(), 50)
    const started = Date.now()
    await expect(gf(`${base}/hang`, { signal: ctrl.signal })).rejects.toMatchObject({ name: 'AbortError' })
    expect(Date.now() - started).toBeLessThan(5_000)
  })
})
