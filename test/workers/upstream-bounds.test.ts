/**
 * Issue 23 item 3 on Workers: the connectors' answer limit holds inside workerd, through the
 * Workers fetch stack (outbound guard over withDeadline's TransformStream). An endless answer
 * is cut off at the limit and its source stream is cancelled: nothing past it is pulled.
 */
import { describe, expect, it } from 'vitest'
import { requestJson } from '../../src/connectors/request.ts'
import type { ConnectorContext } from '../../src/connectors/types.ts'
import { createGuardedFetch } from '../../src/core/outbound.ts'
import { withDeadline } from '../../src/runtime/workers/shared.ts'

const KiB = 1024

describe('bounded upstream answers in workerd', () => {
  it('cuts an endless answer off at maxAnswerBytes and cancels its stream', async () => {
    let pulled = 0
    let cancelled = false
    const chunk = new Uint8Array(16 * KiB).fill(0x78)
    const endless: typeof fetch = async () => new Response(new ReadableStream<Uint8Array>({
      pull(c) { pulled += chunk.byteLength; c.enqueue(chunk) },
      cancel() { cancelled = true },
    }), { status: 200, headers: { 'content-type': 'application/json' } })
    const ctx = {
      fetch: createGuardedFetch({ allowPrivate: true, timeoutMs: 0, fetch: withDeadline(10_000, endless) }),
      connection: { id: 'c', provider: 'http', baseUrl: 'https://vendor.example/api', config: {}, credentials: {} },
      workflow: { id: 'w', upstreamWorkflowId: 'x', config: {} },
      callbackUrl: '', now: Date.now, cache: new Map(), maxAnswerBytes: 256 * KiB,
    } satisfies ConnectorContext
    const err = await requestJson(ctx, 'https://vendor.example/api/jobs/1').then(() => null, (e) => e)
    expect(err).toMatchObject({ code: 'upstream_answer_too_large', transient: true, status: 200 })
    await new Promise((r) => setTimeout(r, 50))
    expect(cancelled).toBe(true)
    expect(pulled).toBeLessThan(256 * KiB + 8 * 16 * KiB)
  })

  it('refuses a URL outside the base URL before fetching', async () => {
    let calls = 0
    const ctx = {
      fetch: (async () => { calls++; return new Response('{}') }) as typeof fetch,
      connection: { id: 'c', provider: 'http', baseUrl: 'https://vendor.example/api', config: {}, credentials: {} },
      workflow: { id: 'w', upstreamWorkflowId: 'x', config: {} },
      callbackUrl: '', now: Date.now, cache: new Map(),
    } satisfies ConnectorContext
    for (const url of ['https://vendor.example/api/../admin', 'https://vendor.example/admin', 'https://evil.example/api/x']) {
      const err = await requestJson(ctx, url).then(() => null, (e) => e)
      expect(err, url).toMatchObject({ code: 'url_outside_base', transient: false })
    }
    expect(calls).toBe(0)
  })
})
