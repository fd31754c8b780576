/**
 * The lease pass's renewal against a run created while it is on its way (and a renewal that
 * lands late: it must never shorten a lease written since) (found by
 * db-faults.test.ts after a database restart: a run created just then ended
 * `trigger_outcome_unknown`). The renewal's UPDATE ran before the create committed, so its
 * answer lacks the new run; the pass took that absence for a lost lease and stopped watching
 * the run, its trigger in flight. Real store, ledger, watcher and run host; the renewal is held
 * between its statement and its answer, as a slow database holds it.
 */
import { rmSync } from 'node:fs'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { Connector } from '../../src/connectors/types.ts'
import { PollPolicy } from '../../src/core/domain.ts'
import { Watcher } from '../../src/core/watcher.ts'
import type { Store } from '../../src/db/store.ts'
import { LocalHub } from '../../src/runtime/local/hub.ts'
import { LocalLedger } from '../../src/runtime/local/ledger.ts'
import { LocalRunHost } from '../../src/runtime/local/run-host.ts'
import { CREATED, migratedStore, queuedRun } from '../helpers/store.ts'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const TTL_MS = 600

describe('lease renewal racing a create', () => {
  let dir: string
  let store: Store
  let host: LocalRunHost
  const triggers: string[] = []
  const triggeredAt = new Map<string, number>()

  beforeEach(async () => {
    ;({ dir, store } = await migratedStore('lease-renew-race'))
    triggers.length = 0
    triggeredAt.clear()
    const connector: Connector = {
      provider: 'fake',
      connectionConfig: PollPolicy as any, credentials: PollPolicy as any, workflowConfig: PollPolicy as any,
      async trigger(_ctx, req) { triggers.push(req.runId); triggeredAt.set(req.runId, Date.now()); await sleep(50); return { upstreamId: `up-${req.runId}`, status: 'running' } },
      async poll() { return { status: 'completed', result: { ok: true } } },
    }
    const policy = PollPolicy.parse({ firstIntervalMs: 100, maxIntervalMs: 100, deadlineMs: 600_000 })
    const ledger = new LocalLedger(store, new LocalHub(), () => Date.now())
    const watcher = new Watcher({
      ledger, clock: { now: () => Date.now() }, random: () => 0,
      bind: async () => ({ connector, policy, ctx: { fetch, connection: {} as any, workflow: {} as any, callbackUrl: '', now: () => Date.now(), cache: new Map() } }),
    })
    host = new LocalRunHost(store, ledger, watcher, () => Date.now(), () => {}, { owner: 'p1', ttlMs: TTL_MS })
    await host.resumeAll()
  })
  afterEach(async () => {
    await host.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  it('a create that commits after most of its lease is not held on that lease: a claim leases it afresh, then it is triggered once and completes', async () => {
    // The database holds the create's commit for 80% of a TTL (a stall the ledger waits out).
    let release!: () => void
    const gate = new Promise<void>((r) => { release = r })
    const writeBatch = store.runs.writeBatch.bind(store.runs)
    let first = true
    store.runs.writeBatch = (async (writes: Parameters<typeof writeBatch>[0]) => {
      if (first) { first = false; await gate }
      return writeBatch(writes)
    }) as typeof store.runs.writeBatch
    const now = Date.now()
    const creating = host.create(queuedRun('r_late', now, { nextTickAt: now }), CREATED)
    await sleep(TTL_MS * 0.8)
    release()
    const run = await creating
    // Not held on a lease with a fifth of a TTL left, so no trigger on it.
    expect(host.heldRuns).toBe(0)
    expect(triggers).toEqual([])
    // Once that lease lapses, the claim pass leases the run afresh and watches it to the end:
    // its one trigger went out after the create's lease had ended.
    await expect.poll(async () => (await store.runs.getById(run.id))!.status, { timeout: 5_000 }).toBe('completed')
    expect(triggers).toEqual(['r_late'])
    expect(triggeredAt.get('r_late')!).toBeGreaterThanOrEqual(now + TTL_MS)
  })

  it('a run created while a renewal is on its way stays watched, and is triggered once and completes', async () => {
    // The next renewal runs its statement, then waits until the run below is created and held.
    let entered!: () => void
    const renewing = new Promise<void>((r) => { entered = r })
    let release!: () => void
    const gate = new Promise<void>((r) => { release = r })
    const renew = store.leases.renew.bind(store.leases)
    let held = false
    store.leases.renew = async (...args) => {
      const kept = await renew(...args)
      if (!held) { held = true; entered(); await gate }
      return kept
    }
    await renewing
    const run = await host.create(queuedRun('run_race', Date.now(), { nextTickAt: Date.now() }), CREATED)
    expect(host.heldRuns).toBe(1)
    release()
    await sleep(100)
    expect(host.heldRuns, 'the renewal that began before the create did not drop the run').toBe(1)
    for (let i = 0; i < 60; i++) {
      if ((await store.runs.getById(run.id))?.finishedAt) break
      await sleep(50)
    }
    const stored = await store.runs.getById(run.id)
    expect({ status: stored?.status, error: stored?.error?.code }).toEqual({ status: 'completed', error: undefined })
    expect(triggers).toEqual([run.id])
  })

  it('a renewal that reaches the database late never shortens a lease, so nobody claims the run before it lapses', async () => {
    // Another process's run, leased by a create a moment ago for 3 s.
    const now = Date.now()
    await store.runs.create(queuedRun('run_late', now, { leaseOwner: 'p9', leaseToken: 1, leaseExpiresAt: now + 3_000 }), CREATED)
    // Its renewal sent before a database stall runs after it: its expiry is older than the create's.
    await store.leases.renew('p9', now - 2_000, now + 1_000)
    expect((await store.runs.getById('run_late'))!.leaseExpiresAt).toBe(now + 3_000)
    // So a claim between the two expiries finds nothing to take; one after the lease's end does.
    expect(await store.leases.claim('p8', now + 1_500, now + 4_500, 10)).toEqual([])
    expect((await store.leases.claim('p8', now + 3_001, now + 6_000, 10)).map((r) => r.id)).toEqual(['run_late'])
  })
})
