/**
 * The run host's due queue under overload (issue 26): one timer for every held run, at most
 * `maxTicksInFlight` ticks at once, the rest waiting earliest due first, so every run is
 * polled (no starvation), lag is shared evenly, the backlog is visible, and the lease pass's
 * invariant (every held run queued or ticking) holds without repairs.
 * Real store, ledger, watcher and run host; the upstream is a connector that answers slowly.
 */
import { rmSync } from 'node:fs'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { Connector } from '../../src/connectors/types.ts'
import { PollPolicy } from '../../src/core/domain.ts'
import { Watcher } from '../../src/core/watcher.ts'
import { Store } from '../../src/db/store.ts'
import { LocalHub } from '../../src/runtime/local/hub.ts'
import { LocalLedger } from '../../src/runtime/local/ledger.ts'
import { LocalRunHost } from '../../src/runtime/local/run-host.ts'
import { CREATED, migratedStore, queuedRun } from '../helpers/store.ts'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const RUNS = 24
const BOUND = 4

describe('run host: bounded ticks in flight', () => {
  let dir: string
  let store: Store
  let host: LocalRunHost
  let running = 0
  let most = 0
  const polls = new Map<string, number>()

  beforeEach(async () => {
    ;({ dir, store } = await migratedStore('run-host-queue'))
    running = 0
    most = 0
    polls.clear()
    const connector: Connector = {
      provider: 'fake',
      connectionConfig: PollPolicy as any, credentials: PollPolicy as any, workflowConfig: PollPolicy as any,
      async trigger() { return { upstreamId: 'up', status: 'running' } },
      async poll(_ctx, ref) {
        running++
        most = Math.max(most, running)
        polls.set(ref.runId, (polls.get(ref.runId) ?? 0) + 1)
        // A slow upstream: BOUND ticks of 80 ms each give at most 50 polls/s, RUNS runs every 100 ms ask for 240.
        await sleep(80)
        running--
        return { status: 'running', progress: Math.random() }
      },
    }
    const policy = PollPolicy.parse({ firstIntervalMs: 100, maxIntervalMs: 100, deadlineMs: 600_000 })
    const ledger = new LocalLedger(store, new LocalHub(), () => Date.now())
    const watcher = new Watcher({
      ledger, clock: { now: () => Date.now() }, random: () => 0,
      bind: async () => ({ connector, policy, ctx: { fetch, connection: {} as any, workflow: {} as any, callbackUrl: '', now: () => Date.now(), cache: new Map() } }),
    })
    host = new LocalRunHost(store, ledger, watcher, () => Date.now(), () => {}, { owner: 'p1', ttlMs: 1_000, maxTicksInFlight: BOUND })
    await host.resumeAll()
  })
  afterEach(async () => {
    await host.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  it('never runs more than the bound, polls every run about as often, shows the backlog, needs no repair', async () => {
    const now = Date.now()
    await Promise.all(Array.from({ length: RUNS }, (_, i) => host.create(queuedRun(`run_${String(i).padStart(2, '0')}`, now, { nextTickAt: now }), CREATED)))
    await sleep(600)
    const before = new Map(polls)
    const backlog = host.backlog()
    expect(backlog.due, 'overloaded: due runs wait for a slot').toBeGreaterThan(0)
    expect(backlog.lagMs).toBeGreaterThan(0)
    expect(host.ticksInFlight).toBeLessThanOrEqual(BOUND)
    await sleep(1_400)
    expect(most, 'ticks in flight never pass the bound').toBeLessThanOrEqual(BOUND)
    expect(most).toBe(BOUND)
    expect(polls.size, 'every run polled: no starvation').toBe(RUNS)
    const counts = [...polls].map(([id, n]) => n - (before.get(id) ?? 0))
    expect(Math.min(...counts), 'every run polled again while overloaded').toBeGreaterThan(0)
    // Earliest due first: every run waits its turn, so their polls in the same window differ by little.
    expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(2)
    expect(host.heldRuns).toBe(RUNS)
    expect(host.repairs, 'every held run stays queued or ticking').toBe(0)
  }, 15_000)

  it('catches up when the load goes: the backlog drains to zero', async () => {
    const now = Date.now()
    for (let i = 0; i < RUNS; i++) await host.create(queuedRun(`run_${i}`, now, { nextTickAt: now }), CREATED)
    await sleep(300)
    expect(host.backlog().due).toBeGreaterThan(0)
    // Cancel all but two: the rest fit within the bound and nothing waits.
    for (let i = 2; i < RUNS; i++) {
      const run = (await store.runs.getById(`run_${i}`))!
      await host.command(run, 'cancel', undefined, 'test')
    }
    await sleep(300)
    expect(host.heldRuns).toBe(2)
    // Nothing waits for a slot any more. A run may be due this very ms, its timer not yet run
    // (a loaded machine widens that window): the backlog is sampled until it reads empty.
    let backlog = host.backlog()
    for (let i = 0; i < 100 && backlog.due > 0; i++) { await sleep(10); backlog = host.backlog() }
    expect(backlog).toEqual({ due: 0, lagMs: 0 })
    expect(host.repairs).toBe(0)
  }, 15_000)
})

describe('run host: one tick per poll', () => {
  it('a run is ticked once per poll: the due queue starts a burst a few ms early, and those ticks are on time, not refused and spun', async () => {
    const { dir, store } = await migratedStore('run-host-spin')
    let polls = 0, ticks = 0
    const connector: Connector = {
      provider: 'fake',
      connectionConfig: PollPolicy as any, credentials: PollPolicy as any, workflowConfig: PollPolicy as any,
      async trigger() { return { upstreamId: 'up', status: 'running' } },
      async poll() { polls++; return { status: 'running', progress: Math.random() } },
    }
    const policy = PollPolicy.parse({ firstIntervalMs: 100, maxIntervalMs: 100, deadlineMs: 600_000 })
    const ledger = new LocalLedger(store, new LocalHub(), () => Date.now())
    const watcher = new Watcher({
      ledger, clock: { now: () => Date.now() }, random: () => 0,
      bind: async () => ({ connector, policy, ctx: { fetch, connection: {} as any, workflow: {} as any, callbackUrl: '', now: () => Date.now(), cache: new Map() } }),
    })
    // Counted, then the real tick.
    const tick = watcher.tick.bind(watcher)
    watcher.tick = (runId) => { ticks++; return tick(runId) }
    const host = new LocalRunHost(store, ledger, watcher, () => Date.now(), () => {}, { owner: 'p1', ttlMs: 1_000 })
    try {
      await host.resumeAll()
      const now = Date.now()
      // Due times a millisecond or two apart: the queue's timer starts them together.
      for (let i = 0; i < 20; i++) await host.create(queuedRun(`run_${i}`, now, { nextTickAt: now + (i % 4) }), CREATED)
      await sleep(1_500)
      expect(polls, 'the runs were polled').toBeGreaterThan(100)
      // One tick per poll, plus each run's trigger tick and a few early ones (the lease pass, a timer).
      expect(ticks, `${ticks} ticks for ${polls} polls`).toBeLessThan(polls * 1.2 + 40)
    } finally {
      await host.stop()
      rmSync(dir, { recursive: true, force: true })
    }
  }, 15_000)
})
