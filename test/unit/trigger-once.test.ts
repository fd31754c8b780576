/**
 * Triggers at most once, in the watcher over a real store: what counts as "certainly not
 * started" (retried as before) and what is an unknown outcome (never resent blindly), and
 * the three ways out of an unknown outcome. Plus the lease queries and the fence.
 */
import { rmSync } from 'node:fs'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { requestJson } from '../../src/connectors/request.ts'
import { UpstreamError, type Connector, type TriggerResult } from '../../src/connectors/types.ts'
import { PollPolicy, type RunEvent } from '../../src/core/domain.ts'
import { Watcher } from '../../src/core/watcher.ts'
import { SeqConflictError, Store } from '../../src/db/store.ts'
import { LocalHub } from '../../src/runtime/local/hub.ts'
import { LocalLedger } from '../../src/runtime/local/ledger.ts'
import { CREATED, migratedStore, queuedRun } from '../helpers/store.ts'

type Answer = number | 'timeout' | 'refused' | 'reset' | 'dns'

describe('triggers at most once (watcher, real store, scripted fetch)', () => {
  let dir: string
  let store: Store
  let ledger: LocalLedger
  let clock: { t: number; now(): number }
  let published: RunEvent[]
  let answers: Answer[]
  let sent: Array<{ url: string; key: string | null }>
  let connector: Connector
  let triggerRetry: 'at_most_once' | 'at_least_once'
  let watcher: Watcher
  const policy = PollPolicy.parse({ firstIntervalMs: 1000, maxIntervalMs: 8000, deadlineMs: 600_000, maxTransientErrors: 3 })

  const fakeFetch: typeof fetch = async (input, init) => {
    sent.push({ url: String(input), key: new Headers(init?.headers).get('idempotency-key') })
    const a = answers.shift() ?? 201
    if (a === 'timeout') throw new DOMException('The operation timed out.', 'TimeoutError')
    if (a === 'refused') throw Object.assign(new TypeError('fetch failed'), { cause: Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' }) })
    if (a === 'dns') throw Object.assign(new TypeError('fetch failed'), { cause: Object.assign(new Error('getaddrinfo ENOTFOUND up.example'), { code: 'ENOTFOUND' }) })
    if (a === 'reset') throw Object.assign(new TypeError('fetch failed'), { cause: Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }) })
    return new Response(JSON.stringify(a < 300 ? { id: `job-${sent.length}` } : { error: 'no' }), { status: a, headers: { 'content-type': 'application/json' } })
  }

  beforeEach(async () => {
    ;({ dir, store } = await migratedStore('trigger-once'))
    clock = { t: 1_700_000_000_000, now() { return this.t } }
    published = []
    answers = []
    sent = []
    triggerRetry = 'at_most_once'
    connector = {
      provider: 'fake',
      connectionConfig: PollPolicy as any, credentials: PollPolicy as any, workflowConfig: PollPolicy as any,
      async trigger(ctx) {
        const res = await requestJson<{ id: string }>(ctx, 'https://up.example/jobs?api_key=SECRET', { body: {} })
        return { upstreamId: res.body.id }
      },
      async poll() { return { status: 'running' } },
    }
    const hub = new LocalHub()
    hub.publish = (_tenant, events) => { published.push(...events) }
    ledger = new LocalLedger(store, hub, () => clock.now())
    watcher = new Watcher({
      ledger, clock, random: () => 1,
      bind: async () => ({ connector, policy, triggerRetry, ctx: { fetch: fakeFetch, connection: { credentials: {}, baseUrl: 'https://up.example' } as any, workflow: {} as any, callbackUrl: '', now: () => clock.now(), cache: new Map() } }),
    })
    await ledger.create(queuedRun('run_1', clock.t, { deadlineAt: clock.t + policy.deadlineMs, nextTickAt: clock.t }), CREATED)
  })
  afterEach(() => rmSync(dir, { recursive: true, force: true }))

  const run = async () => (await store.runs.getById('run_1'))!
  /** Tick until the run has an upstream id or finishes (at most `n` ticks), jumping the clock to each planned tick. */
  const tickUntilSettled = async (n = 6) => {
    for (let i = 0; i < n; i++) {
      const { nextAt } = await watcher.tick('run_1')
      const r = await run()
      if (r.upstreamId || r.finishedAt || nextAt === null) return r
      clock.t = nextAt
    }
    return run()
  }

  it.each<[string, Answer]>([['a timeout', 'timeout'], ['a reset', 'reset'], ['HTTP 500', 500], ['HTTP 502', 502]])(
    'after %s the trigger is not resent: the run fails with trigger_outcome_unknown and the evidence', async (_, answer) => {
      answers = [answer, 201]
      const r = await tickUntilSettled()
      expect(sent).toHaveLength(1)
      expect(r.status).toBe('failed')
      expect(r.error).toMatchObject({ code: 'trigger_outcome_unknown' })
      const evidence = (r.error as { body: Record<string, unknown> }).body
      expect(evidence).toMatchObject({ attempt: 1, idempotency_key: 'run_1', request: { method: 'POST', url: 'https://up.example/jobs' }, sent_at: new Date(1_700_000_000_000).toISOString() })
      expect(JSON.stringify(r.error)).not.toContain('SECRET')
      expect(r.triggerPendingAt).toBe(1_700_000_000_000)
      expect(published.at(-1)).toMatchObject({ type: 'run.status_changed', status: 'failed' })
    })

  it.each<[string, Answer]>([['connection refused', 'refused'], ['a DNS failure', 'dns'], ['HTTP 429', 429], ['HTTP 503', 503]])(
    'after %s (certainly not started) the trigger is retried as before', async (_, answer) => {
      answers = [answer, 201]
      const r = await tickUntilSettled()
      expect(sent).toHaveLength(2)
      expect(r.upstreamId).toBe('job-2')
      expect(r.triggerPendingAt).toBeNull()
      expect(r.triggerAttempts).toBe(2)
    })

  it('a final rejection (HTTP 400) fails the run with the upstream error, not as unknown', async () => {
    answers = [400]
    const r = await tickUntilSettled()
    expect(sent).toHaveLength(1)
    expect(r.error).toMatchObject({ code: 'upstream_http_400' })
  })

  // Issue 23 item 7: a request fetch refuses to build never left, so its failure is certain.
  it('a header value fetch would refuse (a line break in a credential) fails the run as certain, with nothing sent', async () => {
    connector.trigger = async (ctx) => {
      const res = await requestJson<{ id: string }>(ctx, 'https://up.example/jobs', { body: {}, headers: { authorization: 'Bearer abc\r\nX-Admin: 1' } })
      return { upstreamId: res.body.id }
    }
    const r = await tickUntilSettled()
    expect(sent).toHaveLength(0)
    expect(r.status).toBe('failed')
    expect(r.error).toMatchObject({ code: 'invalid_header_value' })
    expect(r.triggerPendingAt).toBeNull()
  })

  it('a connector calling fetch itself with a header fetch refuses: a certain failure (retried), never trigger_outcome_unknown', async () => {
    connector.trigger = async (ctx) => {
      try {
        await ctx.fetch('https://up.example/jobs', { method: 'POST', headers: { 'x-tag': 'a\nb' }, body: '{}' })
      } catch (err) {
        throw new UpstreamError({ code: 'upstream_network_error', message: String((err as Error).message), transient: true })
      }
      return { upstreamId: 'never' }
    }
    const r = await tickUntilSettled(8)
    expect(sent).toHaveLength(0)
    expect(r.status).toBe('failed')
    expect(r.error).toMatchObject({ code: 'upstream_network_error' })
    expect(r.error!.message).toMatch(/gave up after 3 transient errors/)
    expect(r.triggerAttempts).toBe(4)
  })

  it('resends with the same Idempotency-Key when the connector declares the upstream honours it', async () => {
    connector.honoursIdempotencyKey = true
    answers = ['timeout', 201]
    const r = await tickUntilSettled()
    expect(sent.map((s) => s.key)).toEqual(['run_1', 'run_1'])
    expect(r.upstreamId).toBe('job-2')
    expect(published.some((e) => e.type === 'run.error')).toBe(true)
  })

  it('resends when the workflow opted in to at_least_once', async () => {
    triggerRetry = 'at_least_once'
    answers = [502, 201]
    const r = await tickUntilSettled()
    expect(sent).toHaveLength(2)
    expect(r.upstreamId).toBe('job-2')
  })

  it('a trigger left pending by a process that died is never sent again; reconcile adopts the job the vendor lists', async () => {
    // What a SIGKILL between "attempt committed" and "answer stored" leaves behind.
    await ledger.commit(await run(), { triggerPendingAt: clock.t - 5_000, triggerAttempts: 1, triggerAttemptedAt: clock.t - 5_000 }, [])
    const lookedUp: number[] = []
    connector.reconcileTrigger = async (_ctx, req): Promise<TriggerResult | null> => { lookedUp.push(req.sentAt); return { upstreamId: 'job-found', status: 'running' } }
    const r = await tickUntilSettled()
    expect(sent).toHaveLength(0)
    expect(lookedUp).toEqual([clock.t - 5_000])
    expect(r.upstreamId).toBe('job-found')
    expect(r.status).toBe('running')
    expect(published.find((e) => e.type === 'run.status_changed')?.data).toMatchObject({ reconciled: true })
  })

  it('a pending trigger the vendor cannot find, or cannot look up, ends the run failed with the evidence', async () => {
    await ledger.commit(await run(), { triggerPendingAt: clock.t - 5_000, triggerAttempts: 1 }, [])
    connector.reconcileTrigger = async () => null
    const r = await tickUntilSettled()
    expect(sent).toHaveLength(0)
    expect(r.error).toMatchObject({ code: 'trigger_outcome_unknown', body: { attempt: 1, reconcile: 'the upstream lists no job of this run' } })
  })
})

describe('run leases (real store)', () => {
  let dir: string
  let store: Store
  beforeEach(async () => {
    ;({ dir, store } = await migratedStore('lease'))
    for (const id of ['a', 'b', 'c']) {
      await store.runs.create(queuedRun(id, 1), CREATED)
    }
  })
  afterEach(() => rmSync(dir, { recursive: true, force: true }))

  it('claims free runs once, bumping the token; renewal reports runs taken over; release frees them', async () => {
    const p1 = await store.leases.claim('p1', 1_000, 11_000, 10)
    expect(p1.map((r) => [r.id, r.leaseToken]).sort()).toEqual([['a', 1], ['b', 1], ['c', 1]])
    expect(await store.leases.claim('p2', 5_000, 15_000, 10)).toEqual([])
    // p1 stops renewing; p2 claims after expiry with a new token.
    const p2 = await store.leases.claim('p2', 11_001, 21_001, 10)
    expect(p2.map((r) => r.leaseToken)).toEqual([2, 2, 2])
    expect(await store.leases.renew('p1', 11_002, 30_000)).toEqual([])
    expect((await store.leases.renew('p2', 11_002, 30_000)).length).toBe(3)
    expect(await store.leases.releaseAll('p2')).toBe(3)
    expect((await store.leases.claim('p1', 12_000, 22_000, 10)).map((r) => r.leaseToken)).toEqual([3, 3, 3])
  })

  it('Node/Deno and Workers cannot share a database: the second kind refuses with a clear message', async () => {
    await store.settings.claimDeployment('local', 1)
    await store.settings.claimDeployment('local', 2) // any number of Node/Deno processes
    await expect(store.settings.claimDeployment('workers', 3)).rejects.toThrow(/belongs to a Node\/Deno deployment.*refuses to start/)
  })

  it('a write carrying a stale fencing token is refused and appends nothing, even with its seq free', async () => {
    await store.leases.claim('p1', 1_000, 11_000, 10)
    const stale = (await store.runs.getById('a'))!
    await store.leases.claim('p2', 20_000, 30_000, 10) // p1's lease lapsed: p2 takes over (token 2)
    await expect(store.runs.applyChange(stale, { message: 'stale' }, [{ type: 'run.progress', data: { progress: 0.5 } }], 2, stale.leaseToken)).rejects.toBeInstanceOf(SeqConflictError)
    const after = (await store.runs.getById('a'))!
    expect(after.message).toBeNull()
    expect(after.lastSeq).toBe(1)
    expect(await store.runs.events('a', 0, 10)).toHaveLength(1)
    // The new owner's write, with its token, goes through.
    const ok = await store.runs.applyChange(after, { message: 'fresh' }, [{ type: 'run.progress', data: { progress: 0.5 } }], 3, after.leaseToken)
    expect(ok.run.lastSeq).toBe(2)
  })
})
