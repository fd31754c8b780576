import { rmSync } from 'node:fs'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { UpstreamError, type Connector, type Observation } from '../../src/connectors/types.ts'
import { pollDelay, retryDelay } from '../../src/core/backoff.ts'
import { PollPolicy, type RunEvent } from '../../src/core/domain.ts'
import { fitDurations, type DurationModel } from '../../src/core/poll-planner.ts'
import { Watcher } from '../../src/core/watcher.ts'
import { Store } from '../../src/db/store.ts'
import { LocalHub } from '../../src/runtime/local/hub.ts'
import { LocalLedger } from '../../src/runtime/local/ledger.ts'
import { CREATED, migratedStore, queuedRun } from '../helpers/store.ts'

describe('backoff', () => {
  const policy = PollPolicy.parse({ firstIntervalMs: 1000, maxIntervalMs: 8000 })
  it('polls between the first interval and a cap that doubles per unchanged poll, up to the max', () => {
    expect(pollDelay(policy, 0, () => 0)).toBe(1000)
    expect(pollDelay(policy, 0, () => 1)).toBe(1000)
    expect(pollDelay(policy, 1, () => 1)).toBe(2000)
    expect(pollDelay(policy, 2, () => 1)).toBe(4000)
    expect(pollDelay(policy, 10, () => 1)).toBe(8000)
    expect(pollDelay(policy, 10, () => 0.5)).toBe(4500)
  })
  it('retries with full jitter (0..cap), never under 100 ms', () => {
    expect(retryDelay(policy, 1, () => 1)).toBe(1000)
    expect(retryDelay(policy, 3, () => 1)).toBe(4000)
    expect(retryDelay(policy, 3, () => 0.5)).toBe(2000)
    expect(retryDelay(policy, 20, () => 1)).toBe(8000)
    expect(retryDelay(policy, 2, () => 0)).toBe(100)
  })
})

describe('watcher (real store, fake upstream connector, injected clock)', () => {
  let dir: string
  let store: Store
  let clock: { t: number; now(): number }
  let published: RunEvent[]
  let connector: Connector
  let script: Array<Observation | UpstreamError>
  let calls: { trigger: number; poll: number; cancel: number }
  let watcher: Watcher
  /** The workflow's learned run durations handed to the watcher with its binding (adaptive polling). */
  let durations: DurationModel | undefined
  const policy = PollPolicy.parse({ firstIntervalMs: 1000, maxIntervalMs: 8000, deadlineMs: 60_000, maxTransientErrors: 3 })

  beforeEach(async () => {
    ;({ dir, store } = await migratedStore('watcher'))
    clock = { t: 1_700_000_000_000, now() { return this.t } }
    published = []
    durations = undefined
    calls = { trigger: 0, poll: 0, cancel: 0 }
    script = []
    const next = (): Observation => {
      const step = script.shift()
      if (step instanceof UpstreamError) throw step
      return step ?? {}
    }
    connector = {
      provider: 'fake',
      connectionConfig: PollPolicy as any, credentials: PollPolicy as any, workflowConfig: PollPolicy as any,
      async trigger() { calls.trigger++; return { upstreamId: 'up-1', ...next() } },
      async poll() { calls.poll++; return next() },
      commands: { async cancel() { calls.cancel++ } },
    }
    const hub = new LocalHub()
    hub.publish = (_tenant, events) => { published.push(...events) }
    const ledger = new LocalLedger(store, hub, () => clock.now())
    watcher = new Watcher({
      ledger, clock, random: () => 1,
      bind: async () => ({ connector, policy, durations, ctx: { fetch, connection: {} as any, workflow: {} as any, callbackUrl: '', now: () => clock.now(), cache: new Map() } }),
    })
    await ledger.create(queuedRun('run_1', clock.t, { deadlineAt: clock.t + policy.deadlineMs, nextTickAt: clock.t }), CREATED)
  })
  afterEach(() => rmSync(dir, { recursive: true, force: true }))

  const run = async () => (await store.runs.getById('run_1'))!
  const types = () => published.map((e) => `${e.type}:${e.status}`)

  it('triggers once, then polls at the planned times; an early tick does nothing', async () => {
    script = [{ status: 'queued', upstreamStatus: 'pending' }]
    expect((await watcher.tick('run_1')).nextAt).toBe(clock.t + 1000)
    expect(calls.trigger).toBe(1)
    expect((await run()).upstreamId).toBe('up-1')
    clock.t += 500
    expect((await watcher.tick('run_1')).nextAt).toBe(clock.t + 500)
    expect(calls.poll).toBe(0)
    clock.t += 500
    script = [{ status: 'running', upstreamStatus: 'RUNNING' }]
    expect((await watcher.tick('run_1')).nextAt).toBe(clock.t + 1000)
    script = [{ status: 'running' }]
    clock.t += 1000
    // No change: the cap doubles (random() = 1 picks the cap).
    expect((await watcher.tick('run_1')).nextAt).toBe(clock.t + 2000)
    expect(types()).toEqual(['run.created:queued', 'run.status_changed:running'])
    expect((await run()).upstreamStatus).toBe('RUNNING')
  })

  it('a scheduled run is never triggered before its time, even by a tick a few ms early', async () => {
    // The real clock: the host's timers start a burst of due runs up to TICK_TOLERANCE_MS early.
    clock.now = () => Date.now()
    let sentAt = 0
    connector.trigger = async () => { sentAt = Date.now(); return { upstreamId: 'up-2' } }
    for (let i = 0; i < 5; i++) {
      const id = `run_s${i}`, at = Date.now() + 4
      await store.runs.create(queuedRun(id, Date.now(), { status: 'scheduled', scheduledAt: at, nextTickAt: at, deadlineAt: at + 60_000 }), CREATED)
      await watcher.tick(id)
      const row = (await store.runs.getById(id))!
      expect(row.upstreamId).toBe('up-2')
      // Both the request and the time stored for it (trigger_attempted_at) are at or after the time asked.
      expect(row.triggerAttemptedAt).toBeGreaterThanOrEqual(at)
      expect(sentAt).toBeGreaterThanOrEqual(at)
    }
  })

  it('with a learned duration model, skips ahead early and polls every first interval where runs usually end', async () => {
    // Twenty earlier runs took 20–40 s: nothing is likely to change in the first seconds.
    durations = fitDurations(Array.from({ length: 20 }, (_, i) => 20_000 + i * 1_000))
    script = [{ status: 'running' }]
    await watcher.tick('run_1') // the trigger: the first poll still comes after the first interval
    clock.t += 1000
    script = [{ status: 'running' }]
    const early = (await watcher.tick('run_1')).nextAt! - clock.t
    expect(early).toBe(policy.maxIntervalMs) // a long step, within the policy
    // Follow the planned ticks to 35 s: a few long steps, then every first interval.
    const startedAt = (await run()).startedAt!
    let next = clock.t + early
    const gaps: Array<[number, number]> = []
    while (next - startedAt < 35_000) {
      clock.t = next
      script = [{ status: 'running' }]
      next = (await watcher.tick('run_1')).nextAt!
      gaps.push([clock.t - startedAt, next - clock.t])
    }
    expect(gaps.filter(([at]) => at < 20_000).length).toBeLessThanOrEqual(4)
    expect(gaps.filter(([at]) => at >= 27_000).every(([, gap]) => gap === policy.firstIntervalMs)).toBe(true)
    expect(gaps.filter(([at]) => at >= 27_000).length).toBeGreaterThanOrEqual(7)
  })

  it('never polls sooner than a Retry-After, records transient errors, and resets after a good answer', async () => {
    script = [{ status: 'running' }]
    await watcher.tick('run_1')
    clock.t += 1000
    script = [new UpstreamError({ message: 'slow down', code: 'upstream_rate_limited', transient: true, status: 429, notBefore: clock.t + 30_000 })]
    expect((await watcher.tick('run_1')).nextAt).toBe(clock.t + 30_000)
    const err = published.at(-1)!
    expect(err.type).toBe('run.error')
    expect(err.data).toMatchObject({ transient: true, attempt: 1, error: { code: 'upstream_rate_limited', status: 429 } })
    clock.t += 30_000
    script = [{ status: 'running', progress: 0.5 }]
    await watcher.tick('run_1')
    expect((await run()).transientErrors).toBe(0)
    expect(published.at(-1)!.type).toBe('run.progress')
  })

  it('fails the run after too many transient errors in a row, and at once on a final error', async () => {
    script = [{ status: 'running' }]
    await watcher.tick('run_1')
    for (let i = 0; i < 4; i++) {
      clock.t = (await run()).nextTickAt!
      script = [new UpstreamError({ message: 'bad gateway', code: 'upstream_unavailable', transient: true, status: 502 })]
      await watcher.tick('run_1')
    }
    const failed = await run()
    expect(failed.status).toBe('failed')
    expect(failed.error).toMatchObject({ code: 'upstream_unavailable' })
    expect(published.filter((e) => e.type === 'run.error').length).toBe(3)
  })

  it('keeps the upstream error body of a final failure', async () => {
    script = [new UpstreamError({ message: 'upstream answered 400: bad input', code: 'upstream_http_400', transient: false, status: 400, body: { error: 'bad input' } })]
    expect((await watcher.tick('run_1')).nextAt).toBeNull()
    const r = await run()
    expect(r.status).toBe('failed')
    expect(r.error).toMatchObject({ code: 'upstream_http_400', body: { error: 'bad input' } })
  })

  it('ends the run as timed_out at its deadline and cancels upstream', async () => {
    script = [{ status: 'running' }]
    await watcher.tick('run_1')
    clock.t += policy.deadlineMs + 1
    await store.runs.applyChange(await run(), { nextTickAt: clock.t }, [], clock.t)
    expect((await watcher.tick('run_1')).nextAt).toBeNull()
    const r = await run()
    expect(r.status).toBe('timed_out')
    expect(r.error).toMatchObject({ code: 'deadline_exceeded' })
    expect(calls.cancel).toBe(1)
  })

  it('plans a tick at the deadline even when the poll interval is longer', async () => {
    script = [{ status: 'running' }]
    clock.t = (await run()).deadlineAt! - 300
    expect((await watcher.tick('run_1')).nextAt).toBe((await run()).deadlineAt)
  })

  it('ignores statuses that go backwards and unknown ones, but keeps the upstream word', async () => {
    script = [{ status: 'running', upstreamStatus: 'running' }]
    await watcher.tick('run_1')
    for (const obs of [{ status: 'queued' as const, upstreamStatus: 'pending' }, { upstreamStatus: 'WEIRD' }]) {
      clock.t = (await run()).nextTickAt!
      script = [obs]
      await watcher.tick('run_1')
      expect((await run()).status).toBe('running')
      expect((await run()).upstreamStatus).toBe(obs.upstreamStatus)
    }
    expect(types()).toEqual(['run.created:queued', 'run.status_changed:running'])
  })

  it('emits each output once and applies a pushed observation like a poll (one event for one change)', async () => {
    script = [{ status: 'running', outputs: [{ key: 'a', data: 1 }] }]
    await watcher.tick('run_1')
    clock.t = (await run()).nextTickAt!
    script = [{ status: 'running', outputs: [{ key: 'a', data: 1 }, { key: 'b', data: 2 }] }]
    await watcher.tick('run_1')
    expect(published.filter((e) => e.type === 'run.output').map((e) => e.data.key)).toEqual(['a', 'b'])
    await watcher.push('run_1', { status: 'completed', result: { ok: 1 } })
    clock.t = (await run()).nextTickAt ?? clock.t
    await watcher.push('run_1', { status: 'completed', result: { ok: 1 } })
    expect(published.filter((e) => e.type === 'run.status_changed' && e.status === 'completed').length).toBe(1)
    expect((await run()).result).toEqual({ ok: 1 })
    expect((await watcher.tick('run_1')).nextAt).toBeNull()
  })

  it('assigns seq 1..n without gaps and refuses a concurrent append of the same seq', async () => {
    script = [{ status: 'running', progress: 0.1 }]
    await watcher.tick('run_1')
    const stale = await run()
    await store.runs.applyChange(stale, {}, [{ type: 'run.progress', data: { progress: 0.2 } }], clock.t)
    await expect(store.runs.applyChange(stale, {}, [{ type: 'run.progress', data: { progress: 0.3 } }], clock.t)).rejects.toThrow(/concurrently/)
    const events = await store.runs.events('run_1', 0, 100)
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1))
  })
})
