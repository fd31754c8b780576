/**
 * Many requests at once through one isolate. The libSQL client is shared by every request of
 * the isolate; with its default limiter (20 queries in flight) a queued query was started from
 * another request's continuation, workerd tied it to that request and cancelled it when that
 * request ended: the queued request failed as "hung" (500). 29 of 100 WebSocket upgrades
 * failed that way at 50 handshakes in flight under wrangler dev.
 */
import { describe, expect, it } from 'vitest'
import { call, setupTenant } from './helpers.ts'

describe('concurrent requests in one isolate', () => {
  it('answers 60 authenticated requests in flight at once (each reads libSQL)', async () => {
    const t = await setupTenant('concurrency')
    const replies = await Promise.all(Array.from({ length: 60 }, () => call('GET', `/v1/workflows/${t.workflowId}`, t.key)))
    expect(replies.map((r) => r.status)).toEqual(Array(60).fill(200))
  })
})
