/**
 * A process that loses its database stops ticking once its leases may have lapsed, logs the
 * fault once, keeps the runs nobody claimed meanwhile and drops the others when the database
 * answers; no run is left without a timer.
 * Real store and run host; the database "loss" is the lease statements failing.
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

describe('run host: database lost', () => {
  let dir: string
  let store: Store
  let host: LocalRunHost
  let polls: number
  let triggers: number
  /** Writes to fail (a database fault) once the trigger has been answered. */
  let failAfterAnswer: number
  /** The watcher's deps (a test may shorten answerRetryMs). */
  let deps: ConstructorParameters<typeof Watcher>[0]
  const logs: string[] = []

  beforeEach(async () => {
    ;({ dir, store } = await migratedStore('lease-fault'))
    polls = 0
    triggers = 0
    failAfterAnswer = 0
    const connector: Connector = {
      provider: 'fake',
      connectionConfig: PollPolicy as any, credentials: PollPolicy as any, workflowConfig: PollPolicy as any,
      async trigger() {
        triggers++
        if (failAfterAnswer > 0) {
          // The database drops out right after the vendor answered: the answer's writes fail for a while.
          const { writeBatch } = store.runs
          let left = failAfterAnswer
          store.runs.writeBatch = (async (...a: Parameters<Store['runs']['writeBatch']>) => {
            if (left-- > 0) throw Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNREFUSED' } })
            store.runs.writeBatch = writeBatch
            return writeBatch.apply(store.runs, a)
          }) as Store['runs']['writeBatch']
        }
        return { upstreamId: 'up-1', status: 'running' }
      },
      async poll() { polls++; return { status: 'running' } },
    }
    const policy = PollPolicy.parse({ firstIntervalMs: 100, maxIntervalMs: 100, deadlineMs: 600_000 })
    const ledger = new LocalLedger(store, new LocalHub(), () => Date.now())
    deps = {
      ledger, clock: { now: () => Date.now() }, random: () => 0,
      bind: async () => ({ connector, policy, ctx: { fetch, connection: {} as any, workflow: {} as any, callbackUrl: '', now: () => Date.now(), cache: new Map() } }),
    }
    const watcher = new Watcher(deps)
    host = new LocalRunHost(store, ledger, watcher, () => Date.now(), (msg) => logs.push(msg), { owner: 'p1', ttlMs: 1_000 })
    await host.resumeAll()
  })
  afterEach(async () => {
    await host.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  it('stops ticking within the TTL, logs once, and takes the run back when the database answers', async () => {
    const now = Date.now()
    await host.create(queuedRun('run_1', now, { nextTickAt: now }), CREATED)
    await sleep(500)
    expect(polls).toBeGreaterThan(0)
    // The database stops answering the lease statements.
    const { renew: renewLeases, claim: claimRuns } = store.leases
    store.leases.renew = async () => { throw new Error('SQLITE_IOERR: disk I/O error') }
    store.leases.claim = async () => { throw new Error('SQLITE_IOERR: disk I/O error') }
    await sleep(1_600) // past the TTL: every lease may have lapsed
    const stoppedAt = polls
    await sleep(800)
    expect(polls, 'no tick once the leases may have lapsed').toBe(stoppedAt)
    expect(logs.filter((m) => m.startsWith('lease renewal failed'))).toHaveLength(1)
    // Back: nobody claimed the lapsed lease meanwhile, so the renewal keeps it (same token) and polling resumes.
    store.leases.renew = renewLeases
    store.leases.claim = claimRuns
    await sleep(1_000)
    expect(host.heldRuns).toBe(1)
    expect(polls).toBeGreaterThan(stoppedAt)
    expect(logs).toContain('database reachable again: renewing and claiming leases')
    expect((await store.leases.of('run_1'))?.token).toBe(1)
  }, 15_000)

  it('a lapsed lease another process claimed during the fault is dropped here when the database answers', async () => {
    const now = Date.now()
    await host.create(queuedRun('run_2', now, { nextTickAt: now }), CREATED)
    await sleep(300)
    const { renew: renewLeases, claim: claimRuns } = store.leases
    store.leases.renew = async () => { throw new Error('fetch failed') }
    store.leases.claim = async () => { throw new Error('fetch failed') }
    await sleep(1_600) // lapsed; another process (reaching the database) claims it
    expect((await claimRuns.call(store.leases, 'p2', Date.now(), Date.now() + 60_000, 10)).map((r) => r.id)).toEqual(['run_2'])
    const pollsThen = polls
    store.leases.renew = renewLeases
    store.leases.claim = claimRuns
    await sleep(1_000)
    expect(host.heldRuns).toBe(0)
    expect(polls, 'p1 never polls a run p2 owns').toBe(pollsThen)
    expect(logs).toContain('lease lost: run taken over by another process, stopped watching it here')
  }, 15_000)

  it('a run created while the lease is unconfirmed keeps its timer and is polled once renewals succeed (no stranded run)', async () => {
    // Renewals fail past the TTL (every lease may have lapsed: nothing ticks) ...
    const { renew: renewLeases } = store.leases
    store.leases.renew = async () => { throw new Error('fetch failed') }
    await sleep(1_200)
    // ... a run is created meanwhile (its row carries a fresh lease under this process's name) ...
    const now = Date.now()
    await host.create(queuedRun('run_s', now, { nextTickAt: now }), CREATED)
    await sleep(200)
    expect(polls, 'not ticked while the lease is unconfirmed').toBe(0)
    // ... and renewals succeed again, keeping that lease: the run must be ticked, not left without a timer.
    store.leases.renew = renewLeases
    await sleep(2_000) // TTL + poll interval, and some
    expect(polls, 'the run is polled once the database answers').toBeGreaterThan(0)
    expect(host.heldRuns).toBe(1)
  }, 15_000)

  it('a run leased under this process\'s name that it does not hold (a create whose answer was lost) is adopted by the lease pass', async () => {
    const now = Date.now()
    // Committed, but the process never learnt it (the answer was lost to a fault).
    await store.runs.create(queuedRun('run_lost', now, { nextTickAt: now, leaseOwner: 'p1', leaseToken: 1, leaseExpiresAt: now + 60_000 }), CREATED)
    await sleep(1_200)
    expect(host.heldRuns).toBe(1)
    expect(polls).toBeGreaterThan(0)
    expect(host.repairs).toBeGreaterThan(0)
  }, 15_000)

  /** A run triggered once whose answer's writes fail `failures` times: after `waitMs` its answer is stored and it polls, no unknown outcome. */
  async function answerStoredThroughFault(failures: number, waitMs: number) {
    failAfterAnswer = failures
    const now = Date.now()
    await host.create(queuedRun('run_answer', now, { nextTickAt: now }), CREATED)
    await sleep(waitMs)
    const run = await store.runs.getById('run_answer')
    expect(triggers).toBe(1)
    expect(run?.upstreamId).toBe('up-1')
    expect(run?.triggerPendingAt).toBeNull()
    expect(run?.error).toBeNull()
    expect(run?.finishedAt).toBeNull()
    expect(polls).toBeGreaterThan(0)
  }

  it('a known trigger answer survives a short database fault: its write is retried under the lease, no unknown outcome', async () => {
    await answerStoredThroughFault(4, 3_000)
  }, 15_000)

  type Write = ReturnType<Store['runs']['writeBatch']>
  const reset = () => Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNRESET' } })
  /**
   * Every write of the store goes through `wrap` (its number, and the real write); then run `id`
   * is created and watched for 3 s: its job is started once and its answer stored, no error.
   */
  const startedOnceThrough = async (id: string, wrap: (n: number, write: () => Write) => Write) => {
    const { writeBatch } = store.runs
    let writes = 0
    store.runs.writeBatch = ((...a: Parameters<Store['runs']['writeBatch']>) => wrap(++writes, () => writeBatch.apply(store.runs, a))) as Store['runs']['writeBatch']
    const now = Date.now()
    await host.create(queuedRun(id, now, { nextTickAt: now }), CREATED)
    await sleep(3_000)
    const run = await store.runs.getById(id)
    expect(triggers).toBe(1)
    expect(run?.error).toBeNull()
    expect(run?.upstreamId).toBe('up-1')
    return { run, writes }
  }

  it('a trigger attempt whose write committed but whose reply was lost sent nothing: the next tick sends it, no unknown outcome', async () => {
    let lost = false
    const { run } = await startedOnceThrough('run_lost', async (_, write) => {
      const out = await write()
      // The attempt (trigger_pending_at set) commits; the database dies before its reply arrives.
      if (!lost && (await store.runs.getById('run_lost'))?.triggerPendingAt != null) { lost = true; throw reset() }
      return out
    })
    expect(lost).toBe(true)
    expect(run?.triggerAttempts).toBe(2)
  }, 15_000)

  it('trigger attempts whose writes timed out, one committing late, sent nothing: no unknown outcome', async () => {
    let late: (() => Write) | undefined
    const { writes } = await startedOnceThrough('run_late', async (n, write) => {
      // The 2nd and 3rd writes (two attempts' marks, after the create): the client gives up on
      // both; the database has the first still, and commits it just after the second failed.
      if (n === 2) late = write
      if (n === 3) await late!()
      if (n === 2 || n === 3) throw reset()
      return write()
    })
    expect(writes).toBeGreaterThan(3)
  }, 15_000)

  it('an attempt\'s mark that lands late cannot overwrite a newer attempt\'s: the job is not started twice', async () => {
    // The second attempt's answer cannot be written either: the next tick decides from the row.
    deps.answerRetryMs = 0
    failAfterAnswer = 1
    let late: (() => Write) | undefined
    const { run } = await startedOnceThrough('run_stale', async (n, write) => {
      // The 2nd write (the first attempt's mark) times out for the client; the database applies it
      // only after the next attempt's mark (the 3rd write) has committed and its request left.
      if (n === 2) { late = write; throw reset() }
      const out = await write()
      if (n === 3) await late!()
      return out
    })
    expect(run?.triggerAttempts).toBe(1)
  }, 15_000)

  it('a trigger answer whose write gave up (the lease unconfirmed, a database restart) is stored by the next tick, not called unknown', async () => {
    // Give up on the answer's write at its first fault, as when the lease cannot be confirmed.
    deps.answerRetryMs = 0
    await answerStoredThroughFault(1, 2_000)
  }, 15_000)
})
