import { afterEach, describe, expect, it, vi } from 'vitest'
import { createGuardedFetch, withCredentials } from '../../src/core/outbound.ts'
import { redactDeep, redactText, redactUrl } from '../../src/core/redact.ts'
import { logger } from '../../src/runtime/local/embedded.ts'

describe('credential redaction (issue 12 item 7)', () => {
  afterEach(() => { vi.restoreAllMocks() })

  it('removes userinfo, credential-named query values and known secret values, keeping the rest readable', () => {
    expect(redactUrl('https://u:p@vendor.example/v1/jobs?api_key=s3cr3t&page=2&access_token=t0k&X-Amz-Signature=abc'))
      .toBe('https://vendor.example/v1/jobs?api_key=REDACTED&page=2&access_token=REDACTED&X-Amz-Signature=REDACTED')
    expect(redactText('More than 5 redirects (last: http://127.0.0.1:9/jobs?key=k1&sig=zz)')).toBe('More than 5 redirects (last: http://127.0.0.1:9/jobs?key=REDACTED&sig=REDACTED)')
    expect(redactText('invalid key my-long-secret (my%2Blong) ', ['my-long-secret', 'my+long'])).toBe('invalid key REDACTED (REDACTED) ')
    expect(redactText('status=failed&progress=0.5')).toBe('status=failed&progress=0.5')
    expect(redactDeep({ error: { message: 'bad abcd1234', list: ['x?token=1'] }, n: 3 }, ['abcd1234'])).toEqual({ error: { message: 'bad REDACTED', list: ['x?token=REDACTED'] }, n: 3 })
  })

  it('the log line of a message quoting a URL credential is redacted', () => {
    const lines: string[] = []
    vi.spyOn(console, 'error').mockImplementation((line) => { lines.push(String(line)) })
    logger('debug')('tick failed', { error: 'More than 5 redirects (last: http://h.example/?api_key=LEAK-1234)' })
    expect(lines).toHaveLength(1)
    expect(lines[0]).toContain('api_key=REDACTED')
    expect(lines[0]).not.toContain('LEAK-1234')
  })
})

describe('cross-origin redirects (issue 12 item 8)', () => {
  it('strip credential-named headers and params, and any header or param holding a marked secret', async () => {
    const calls: Array<{ url: string; headers: Record<string, string> }> = []
    const routes: Record<string, () => Response> = {
      'https://vendor.example/a?q=1&apikey=K-123456': () => new Response(null, { status: 307, headers: { location: 'https://vendor.example/b?q=1&apikey=K-123456' } }),
      'https://vendor.example/b?q=1&apikey=K-123456': () => new Response(null, { status: 302, headers: { location: 'https://other.example/c?q=1&apikey=K-123456&custom=S-abcdef' } }),
      'https://other.example/c?q=1': () => new Response('{}'),
    }
    const fake: typeof fetch = async (input, init) => {
      const url = String(input)
      calls.push({ url, headers: Object.fromEntries(new Headers(init?.headers)) })
      const route = routes[url]
      if (!route) throw new TypeError(`no route ${url}`)
      return route()
    }
    const gf = createGuardedFetch({ allowPrivate: true, fetch: fake })
    const res = await gf('https://vendor.example/a?q=1&apikey=K-123456', withCredentials({ headers: { 'x-vendor-auth-header': 'v', 'x-custom': 'S-abcdef', 'x-keep': '1', 'idempotency-key': 'run_1' } }, ['S-abcdef', 'K-123456']))
    expect(res.status).toBe(200)
    expect(calls.map((c) => c.url)).toEqual(['https://vendor.example/a?q=1&apikey=K-123456', 'https://vendor.example/b?q=1&apikey=K-123456', 'https://other.example/c?q=1'])
    expect(calls[1]!.headers['x-custom']).toBe('S-abcdef')
    expect(calls[2]!.headers).toMatchObject({ 'x-keep': '1', 'idempotency-key': 'run_1' })
    expect(calls[2]!.headers['x-custom']).toBeUndefined()
    expect(calls[2]!.headers['x-vendor-auth-header']).toBeUndefined()
  })
})
