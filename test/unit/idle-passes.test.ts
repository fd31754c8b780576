/**
 * An idle process's timers skip their queries while nothing was committed (issue 26: idle cost
 * ≤ 0.5% of a core), and still find what another process commits, and a lease that lapses
 * without any commit (its holder died), in time. Real libSQL file, the write connection the
 * local runtimes use, a second store on the same file as the other process.
 */
import { createClient } from '@libsql/client'
import { drizzle } from 'drizzle-orm/libsql'
import Database from 'libsql'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { Connector } from '../../src/connectors/types.ts'
import { SecretBox } from '../../src/core/crypto.ts'
import { PollPolicy } from '../../src/core/domain.ts'
import { Watcher } from '../../src/core/watcher.ts'
import { schema, Store } from '../../src/db/store.ts'
import { LocalHub } from '../../src/runtime/local/hub.ts'
import { LocalLedger } from '../../src/runtime/local/ledger.ts'
import { LocalRunHost } from '../../src/runtime/local/run-host.ts'
import { LocalScheduler } from '../../src/runtime/local/scheduler.ts'
import { ScheduleEngine } from '../../src/services/scheduling.ts'
import { WebhookDispatcher } from '../../src/services/webhook-dispatcher.ts'
import { KeyRateLimiter } from '../../src/http/rate-limit.ts'
import { runBody } from '../../src/http/serialize.ts'
import { changeCounterOf, withWriteConnection } from '../../src/runtime/local/write-connection.ts'
import { CREATED, queuedRun, storeIn } from '../helpers/store.ts'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await sleep(10)
  }
}

describe('idle passes', () => {
  let dir: string
  let client: ReturnType<typeof createClient>
  let store: Store
  let other: Store
  let host: LocalRunHost
  let claims: number
  const stops: Array<() => Promise<unknown> | unknown> = []

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'runrelay-idle-'))
    const path = join(dir, 'db')
    client = createClient({ url: `file:${path}`, timeout: 5_000 })
    withWriteConnection(client, path, 5_000)
    store = new Store(drizzle(client, { schema }))
    await store.migrate()
    other = storeIn(dir)
    claims = 0
    const claim = store.leases.claim.bind(store.leases)
    store.leases.claim = (...a) => { claims++; return claim(...a) }
    const connector: Connector = {
      provider: 'fake',
      connectionConfig: PollPolicy as any, credentials: PollPolicy as any, workflowConfig: PollPolicy as any,
      async trigger() { return { upstreamId: 'up-1', status: 'running' } },
      async poll() { return { status: 'running' } },
    }
    const policy = PollPolicy.parse({ firstIntervalMs: 5_000, maxIntervalMs: 5_000, deadlineMs: 600_000 })
    const ledger = new LocalLedger(store, new LocalHub(), () => Date.now())
    const watcher = new Watcher({
      ledger, clock: { now: () => Date.now() }, random: () => 0,
      bind: async () => ({ connector, policy, ctx: { fetch, connection: {} as any, workflow: {} as any, callbackUrl: '', now: () => Date.now(), cache: new Map() } }),
    })
    // TTL 1 s: a lease pass every 250 ms.
    host = new LocalRunHost(store, ledger, watcher, () => Date.now(), () => {}, { owner: 'p1', ttlMs: 1_000, changes: changeCounterOf(client) })
    stops.push(() => host.stop())
  })
  afterEach(async () => {
    for (const stop of stops.splice(0).reverse()) await stop()
    client.close()
    rmSync(dir, { recursive: true, force: true })
  })

  /** The jobs pass (every 50 ms) on the change counter, and how many times it listed due schedules (a pass that ran its queries). */
  async function jobsPass() {
    const listed = { count: 0 }
    const listDue = store.schedules.listDue.bind(store.schedules)
    store.schedules.listDue = (...a) => { listed.count++; return listDue(...a) }
    const clock = { now: () => Date.now() }
    const secrets = await SecretBox.fromKey(Buffer.alloc(32, 7).toString('base64'))
    const jobs = new LocalScheduler({
      store, clock, log: () => {}, config: { RUNRELAY_JOBS_INTERVAL_MS: 50 },
      schedules: new ScheduleEngine({ store, clock, hosts: host }),
      webhooks: new WebhookDispatcher({ store, secrets, clock, runBody, fetch }, { timeoutMs: 1_000 }),
      changes: changeCounterOf(client),
    })
    stops.push(() => jobs.stop())
    return { jobs, listed }
  }

  it('the lease pass claims only after a commit, or once a lease may have lapsed; a free run and a dead holder\'s run are still taken', async () => {
    await host.resumeAll()
    await sleep(900)
    // Nothing committed: after the first claim, the passes skip theirs (at most one more: a TTL after the first).
    expect(claims).toBeLessThanOrEqual(2)
    expect(host.claimsSkipped).toBeGreaterThanOrEqual(2)

    // Another process creates a run leased by a holder that then dies: it never renews, nothing else commits.
    const now = Date.now()
    await other.runs.create(queuedRun('r_dead', now, { nextTickAt: now, leaseOwner: 'dead', leaseToken: 1, leaseExpiresAt: now + 600 }), CREATED)
    // The commit makes the next pass claim (too early: the lease is live), then passes skip until it may have lapsed.
    const claimsAfterCommit = claims
    await until(() => host.heldRuns === 1, 2_500, 'the dead holder\'s run taken over')
    const tookMs = Date.now() - now
    // Lapsed at +600 ms; taken at most about a TTL plus a pass after the commit was seen.
    expect(tookMs).toBeGreaterThanOrEqual(550)
    expect(tookMs).toBeLessThan(1_800)
    // Far fewer claims than passes (a pass every 250 ms).
    expect(claims - claimsAfterCommit).toBeLessThanOrEqual(Math.ceil(tookMs / 250) - 1)

    // A run nobody leases, committed by the other process: claimed on the next pass.
    const t = Date.now()
    await other.runs.create(queuedRun('r_free', t, { nextTickAt: t }), CREATED)
    await until(() => host.heldRuns === 2, 1_000, 'the free run claimed')
  })

  it('without a change counter every pass claims, as before', async () => {
    const plain = new LocalRunHost(store, new LocalLedger(store, new LocalHub(), () => Date.now()), host.watcher, () => Date.now(), () => {}, { owner: 'p2', ttlMs: 1_000 })
    stops.push(() => plain.stop())
    await plain.resumeAll()
    await sleep(900)
    expect(claims).toBeGreaterThanOrEqual(3)
    expect(plain.claimsSkipped).toBe(0)
  })

  it('the jobs pass skips while nothing is committed and nothing is due, and runs again after any commit, this process\'s write connection included', async () => {
    const { jobs, listed } = await jobsPass()
    await jobs.start()
    await sleep(500)
    // The start pass, the first loop pass (no reference yet), maybe one more after its own cursor write; then skips.
    expect(listed.count).toBeLessThanOrEqual(4)
    expect(jobs.skipped).toBeGreaterThanOrEqual(5)
    // Another process commits: the next pass runs.
    const before = listed.count
    await other.runs.create(queuedRun('r_x', Date.now()), CREATED)
    await until(() => listed.count > before, 1_000, 'a pass after another process\'s commit')
    // This process's own group commit (the write connection, which data_version never counts): runs too.
    await sleep(300)
    const mid = listed.count
    const ledger = new LocalLedger(store, new LocalHub(), () => Date.now())
    await ledger.create(queuedRun('r_y', Date.now()), CREATED)
    await until(() => listed.count > mid, 1_000, 'a pass after this process\'s own commit')
  })

  it('the per-key rate limiter\'s heartbeat wakes no pass here, and still reaches the other processes', async () => {
    const { jobs, listed } = await jobsPass()
    // The default limit, synced every 50 ms: a process that served a key within the last minute
    // writes its heartbeat once a second even while it accepts nothing.
    const limiter = new KeyRateLimiter(6_000, () => Date.now(), undefined, { sync: store.keyRates('p1', 3_000), intervalMs: 50 })
    stops.push(() => limiter.stop())
    // Another process on the file counts this one as live through the heartbeat.
    const seen = new KeyRateLimiter(6_000, () => Date.now(), undefined, { sync: other.keyRates('p2', 3_000), intervalMs: 50 })
    stops.push(() => seen.stop())
    await jobs.start()
    await host.resumeAll()
    await limiter.start()
    limiter.take('key:k')
    await sleep(500)
    const counter = changeCounterOf(client)!
    const [passes, claimed, count] = [listed.count, claims, counter()]
    await sleep(2_200)
    // Two heartbeats or more went out; the change counter stood still, so every jobs pass since
    // skipped its queries, and the lease pass claimed only on its lapse timer (once a TTL, 1 s).
    expect(counter()).toBe(count)
    expect(listed.count - passes).toBe(0)
    expect(claims - claimed).toBeLessThanOrEqual(3)
    await seen.start()
    expect(seen['processes']).toBe(2)
  })

  it('a process whose rate limiter has served no key writes nothing after its first sync: no commit to wake another process\'s passes', async () => {
    // Two processes on one file, neither serving requests (the default limit, synced every 50 ms).
    const quiet = new KeyRateLimiter(6_000, () => Date.now(), undefined, { sync: store.keyRates('p1', 3_000), intervalMs: 50 })
    stops.push(() => quiet.stop())
    await quiet.start()
    // Another connection's view of the file's change counter.
    const probe = new Database(join(dir, 'db'))
    stops.push(() => probe.close())
    const dataVersion = probe.prepare('PRAGMA data_version').raw(true)
    const version = () => (dataVersion.get() as [number])[0]
    const v0 = version()
    await sleep(1_500)
    // Nothing committed by this process: the other one's change counter stood still.
    expect(version()).toBe(v0)
    // The other process, starting now, counts only itself once the first heartbeat aged out of the window.
    const late = new KeyRateLimiter(6_000, () => Date.now(), undefined, { sync: other.keyRates('p2', 1_000), intervalMs: 50 })
    stops.push(() => late.stop())
    await late.start()
    expect(late['processes']).toBe(1)
    // A request here makes it sync at once: it counts again for the others.
    const v1 = version()
    quiet.take('key:k')
    await until(() => version() !== v1, 1_000, 'the heartbeat of a process that serves a key again')
    // (The other process syncs its view on its own first request.)
    late.take('key:j')
    await sleep(0)
    await late.syncNow()
    expect(late['processes']).toBe(2)
  })
})
