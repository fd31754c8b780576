/**
 * The two boundaries of an upstream call as pure functions (issue 23 items 1, 2, 3): values
 * encoded for their position, URLs confined under the base URL, secrets redacted in every form
 * and field, kept answers bounded. The same code runs on every runtime (see also
 * test/workers/upstream-bounds.test.ts and the reliability tests on the real server).
 */
import { describe, expect, it, vi } from 'vitest'
import { createGuardedFetch } from '../../../src/core/outbound.ts'
import { confineUrl, requestJson } from '../../../src/connectors/request.ts'
import { boundJson, shownObservation } from '../../../src/core/redact-upstream.ts'
import { redactSecrets, secretForms } from '../../../src/core/redact.ts'
import { renderHeaderValue, renderPath } from '../../../src/core/template.ts'
import { makeCtx } from './context.ts'

describe('renderPath / renderHeaderValue (item 1)', () => {
  it('percent-encodes strings, numbers and booleans in path segments and query values', () => {
    expect(renderPath('/r/{{a}}/x?q={{b}}&n={{n}}&t=[[t]]', { a: '../x?y#z', b: 'v&admin=1', n: 3 }, { t: true }).value)
      .toBe('/r/..%2Fx%3Fy%23z/x?q=v%26admin%3D1&n=3&t=true')
  })
  it('refuses arrays, objects and null in a path or a query, and a segment that renders to . or ..', () => {
    expect(() => renderPath('/r/{{a}}', { a: ['/../admin'] })).toThrow(/an array/)
    expect(() => renderPath('/r?q={{a}}', { a: { x: 1 } })).toThrow(/an object/)
    expect(() => renderPath('/r/{{a}}', { a: null })).toThrow(/null/)
    for (const a of ['..', '.', '%2e%2e']) {
      if (a === '%2e%2e') expect(renderPath('/r/{{a}}', { a }).value).toBe('/r/%252e%252e') // encoded: no longer a dot segment
      else expect(() => renderPath('/r/{{a}}', { a }), a).toThrow(/move the request up/)
    }
    expect(() => renderPath('/r/{{a}}{{b}}', { a: '.', b: '.' })).toThrow(/move the request up/)
  })
  it('reports missing variables', () => {
    expect(renderPath('/r/{{a}}', {}).missing).toEqual(['{{a}}'])
  })
  it('refuses header values with CR, LF, NUL or non-ASCII characters', () => {
    expect(renderHeaderValue('X-A', 'id {{a}}', { a: 42 }).value).toBe('id 42')
    for (const a of ['x\r\nX-Admin: 1', 'x\ny', 'x\u0000', 'Zürich']) expect(() => renderHeaderValue('X-A', '{{a}}', { a }), JSON.stringify(a)).toThrow(/line break/)
    expect(() => renderHeaderValue('X-A', '{{a}}', { a: [1] })).toThrow(/an array/)
  })
})

describe('confineUrl (item 1)', () => {
  const base = 'https://vendor.example:8443/api/v2'
  it('keeps URLs under the base URL', () => {
    expect(confineUrl(base, 'https://vendor.example:8443/api/v2/jobs/1?x=1')).toBe('https://vendor.example:8443/api/v2/jobs/1?x=1')
    expect(confineUrl(base, 'https://vendor.example:8443/api/v2')).toBe('https://vendor.example:8443/api/v2')
  })
  it('refuses another scheme, host, port, a path outside the base path, user info and dot segments', () => {
    for (const url of [
      'http://vendor.example:8443/api/v2/jobs', 'https://evil.example:8443/api/v2/jobs', 'https://vendor.example/api/v2/jobs',
      'https://vendor.example:8443/api/v20/jobs', 'https://vendor.example:8443/admin', 'https://u:p@vendor.example:8443/api/v2/jobs',
      'https://vendor.example:8443/api/v2/../admin', 'https://vendor.example:8443/api/v2/%2E%2E/admin', 'https://vendor.example:8443/api/v2/a\\..\\..\\admin',
    ]) expect(() => confineUrl(base, url), url).toThrow(expect.objectContaining({ code: 'url_outside_base', transient: false }))
  })
})

describe('the upstream boundary (item 2)', () => {
  const CRED = 'tok"en/with+odd=chars'
  const forms = secretForms([CRED, 'ada', 'pw-secret-value'])
  it('redacts every form of a secret in every string and key, and returns untouched values as they are', () => {
    const basic = btoa('ada:pw-secret-value')
    const value = {
      error: `invalid credentials: Bearer ${CRED}`, url: `https://x.example/?k=${encodeURIComponent(CRED)}`,
      nested: [{ header: `Basic ${basic}` }, JSON.stringify({ t: CRED })], [CRED]: 1, b64: btoa(CRED), n: 3,
    }
    const out = redactSecrets(value, forms)
    const text = JSON.stringify(out)
    for (const f of [CRED, encodeURIComponent(CRED), basic, btoa(CRED), JSON.stringify(CRED).slice(1, -1), 'pw-secret-value']) expect(text, f).not.toContain(f)
    expect(out.error).toBe('invalid credentials: Bearer REDACTED')
    expect(out.n).toBe(3)
    const clean = { a: 'nothing here', b: [1, 2] }
    expect(redactSecrets(clean, forms)).toBe(clean)
  })
  it('an observation: every field but the connector state, errors also lose URL credentials, raw answers bounded', () => {
    const obs = shownObservation({
      status: 'failed', upstreamStatus: 'failed', message: `m ${CRED}`, result: { r: CRED }, outputs: [{ key: 'k', data: CRED }],
      error: { code: 'x', message: `see https://h.example/?api_key=abc and ${CRED}`, body: { echo: CRED } },
      raw: { blob: 'z'.repeat(200 * 1024) }, state: { keep: CRED },
    }, forms)
    expect(JSON.stringify({ ...obs, state: undefined })).not.toContain('with+odd')
    expect(obs.error!.message).toBe('see https://h.example/?api_key=REDACTED and REDACTED')
    expect(obs.state).toEqual({ keep: CRED })
    expect(obs.raw).toMatchObject({ runrelay_truncated: true })
    expect(boundJson(obs.raw)).toBe(obs.raw)
  })
})

describe('bounded answers (item 3)', () => {
  it('refuses a declared Content-Length over the limit without reading the body', async () => {
    let pulled = 0
    const fetch: typeof globalThis.fetch = async () => new Response(new ReadableStream({ pull(c) { pulled++; c.enqueue(new Uint8Array(1024)) } }), { headers: { 'content-length': String(10 * 1024 * 1024) } })
    const ctx = { ...makeCtx({ provider: 'http', baseUrl: 'https://v.example', fetch }), maxAnswerBytes: 1024 * 1024 }
    const err = await requestJson(ctx, 'https://v.example/x').then(() => null, (e) => e)
    expect(err).toMatchObject({ code: 'upstream_answer_too_large', transient: true })
    expect(pulled).toBeLessThanOrEqual(1)
  })
  it('reads an answer up to the limit', async () => {
    const body = JSON.stringify({ s: 'x'.repeat(1000) })
    const ctx = { ...makeCtx({ provider: 'http', baseUrl: 'https://v.example', fetch: async () => new Response(body) }), maxAnswerBytes: body.length }
    expect((await requestJson(ctx, 'https://v.example/x')).body).toEqual({ s: 'x'.repeat(1000) })
    const small = { ...ctx, maxAnswerBytes: body.length - 1 }
    expect(await requestJson(small, 'https://v.example/x').then(() => null, (e) => e.code)).toBe('upstream_answer_too_large')
  })
})

describe('requestJson and the guarded fetch deadline', () => {
  it('leaves no timer behind once the answer is read (the 15 s deadline timer of each poll used to live on)', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] })
    try {
      const base = (async () => new Response('{"status":"running"}', { headers: { 'content-type': 'application/json' } })) as typeof fetch
      const ctx = makeCtx({ provider: 'http', baseUrl: 'https://up.example', fetch: createGuardedFetch({ allowPrivate: true, fetch: base, timeoutMs: 15_000 }) })
      const res = await requestJson(ctx, 'https://up.example/jobs/1')
      expect(res.body).toEqual({ status: 'running' })
      expect(vi.getTimerCount()).toBe(0)
    } finally {
      vi.useRealTimers()
    }
  })
})
