import type { UpgradeWebSocket } from 'hono/ws'
import { ensureRootKey } from '../../services/bootstrap.ts'
import { checkEncryptionKey } from '../../services/keys.ts'
import { retryStoreFaults } from '../../db/store-errors.ts'
import type { SecretBox } from '../../core/crypto.ts'
import { createGuardedFetch, type ResolveHost } from '../../core/outbound.ts'
import { systemClock, type Clock } from '../../core/ports.ts'
import { SharedRateBudget } from '../../core/rate-budget.ts'
import { Watcher } from '../../core/watcher.ts'
import type { Config } from '../../config.ts'
import type { Store } from '../../db/store.ts'
import { KeyRateLimiter } from '../../http/rate-limit.ts'
import { LocalHub } from './hub.ts'
import { LocalLedger } from './ledger.ts'
import { PromMetrics } from './metrics.ts'
import { startTracing } from './telemetry.ts'
import { LocalRunHost } from './run-host.ts'
import { LocalScheduler } from './scheduler.ts'
import { LocalStreams, type WebSocketAcceptor } from './streams.ts'
import { EventTail } from './tail.ts'
import { changeCounterOf, dataVersionOf, fileWatchOf } from './write-connection.ts'
import { composeApp, composeBinder, composeServices, type Platform } from '../compose.ts'

/** How long a key, workflow or connection read stays cached. */
const READ_CACHE_MS = 5_000
/** How often the read cache checks whether another process changed a cached row (a revoked key stops working everywhere within this). */
const READ_CACHE_SYNC_MS = 250
/** How long start-up keeps retrying a database that does not answer (see `boot`). */
const START_RETRY_MS = 60_000

export interface LocalRuntimeOptions {
  store: Store
  secrets: SecretBox
  config: Config
  /** Hono's upgrade helper (Deno), or a runtime that upgrades accepted stream requests itself (Node). */
  upgradeWebSocket: UpgradeWebSocket | WebSocketAcceptor
  resolveHost?: ResolveHost
  /** The fetch under the outbound guard, upstream and webhooks (Node: pinned-transport.ts; tests route names to loopback fakes); default globalThis.fetch. */
  fetch?: typeof fetch
  clock?: Clock
  log?: (msg: string, extra?: Record<string, unknown>) => void
  /** Sampling period of the event-loop delay metric (Bun: a JS timer, so its default 10 ms costs idle CPU). */
  eventLoopPrecisionMs?: number
}

/**
 * runrelay in one process (Node and Deno share this): in-process hub, run host and streams
 * over the embedded store. The runtime entry only adds the server, files and signals.
 */
export async function createLocalRuntime(opts: LocalRuntimeOptions) {
  const { store, secrets, config } = opts
  const clock = opts.clock ?? systemClock
  const log = opts.log ?? (() => {})
  const origin = (port: number) => `http://${config.HOST.includes(':') ? `[${config.HOST}]` : config.HOST}:${port}`
  // With PORT=0 the real port is known only once the server listens: see `listeningOn`.
  let publicUrl = config.RUNRELAY_PUBLIC_URL ?? origin(config.PORT)

  // Start-up steps ride out a database that is slow or restarting (many processes starting at once):
  // each is idempotent, so it is retried on a store fault for up to a minute before the start fails.
  let faultLogged = false
  const boot = <T>(fn: () => Promise<T>) => retryStoreFaults(fn, START_RETRY_MS, (err) => {
    if (!faultLogged) log('database unavailable at start: retrying', { error: String((err as Error)?.message ?? err) })
    faultLogged = true
  })
  await boot(() => store.migrate())
  await boot(() => store.settings.claimDeployment('local', clock.now()))
  // A process with another encryption key would accept runs it cannot bind: it refuses to start instead.
  await boot(() => checkEncryptionKey(store, secrets, clock.now()))
  // Keys, workflows and connections are read from memory between changes: a change made through
  // this process drops its entry at once, one made by another process empties the cache at the next sync.
  store.enableReadCache(READ_CACHE_MS)
  await boot(() => store.syncReadCache())
  // A period in which no other connection committed (the file's change counter stood still) has nothing to sync.
  const dataVersion = dataVersionOf(store.client)
  let syncedVersion: number | undefined
  let lastSyncAt = 0
  // With the event tail probing the same counter more often than this sync's period, the sync rides on the
  // tail's timer (one wake-up and one probe for both, issue 26), at most once per `minGap` so that a change
  // is still synced within READ_CACHE_SYNC_MS (a change just after a sync waits minGap, then up to one tail period).
  const tailMs = config.RUNRELAY_TAIL_INTERVAL_MS
  const onTail = dataVersion !== undefined && tailMs > 0 && tailMs < READ_CACHE_SYNC_MS
  const minGap = onTail ? READ_CACHE_SYNC_MS - tailMs : 0
  const syncIfChanged = (v: number | undefined) => {
    if (v !== undefined && v === syncedVersion) return
    const now = Date.now()
    if (now - lastSyncAt < minGap) return
    lastSyncAt = now
    store.syncReadCache().then(() => { syncedVersion = v }, (err) => { syncedVersion = undefined; log('read cache sync failed', { error: String(err) }) })
  }
  const cacheSync = onTail ? undefined : setInterval(() => syncIfChanged(dataVersion?.()), READ_CACHE_SYNC_MS)
  ;(cacheSync as { unref?: () => void } | undefined)?.unref?.()
  const root = await boot(() => ensureRootKey(store, config.RUNRELAY_ROOT_KEY, clock.now()))

  const metrics = new PromMetrics(store, { eventLoopPrecisionMs: opts.eventLoopPrecisionMs })
  const tracing = await startTracing(config)
  const telemetry = { metrics, tracer: tracing?.tracer }
  const hub = new LocalHub()
  // Every event reaches the hub through the tail: this process's commits at once, other processes' on a bus notice or the tail's period.
  const tail = new EventTail(store, hub, { intervalMs: config.RUNRELAY_TAIL_INTERVAL_MS, log, dataVersion, onPeriod: onTail ? syncIfChanged : undefined, watchFile: fileWatchOf(store.client) })
  await boot(() => tail.start())
  // Loaded only when configured: the Redis client is the largest dependency and a single process never needs it.
  const bus = config.RUNRELAY_BUS_URL
    ? (await import('./bus.ts')).connectRedisBus(config.RUNRELAY_BUS_URL, { onNotice: (id) => tail.notified(id), onRecovered: () => tail.wake(), log, fallbackIntervalMs: config.RUNRELAY_TAIL_INTERVAL_MS })
    : undefined
  tail.announceTo(bus)
  const ledger = new LocalLedger(store, tail, () => clock.now(), telemetry)
  const platform: Platform = {
    store, secrets, clock, config, publicUrl: () => publicUrl, resolveHost: opts.resolveHost, transport: opts.fetch, ...telemetry,
    budget: new SharedRateBudget((key, perSecond, now) => store.settings.reserveRateToken(key, perSecond, now), () => clock.now()),
    fetch: createGuardedFetch({ allowPrivate: config.RUNRELAY_ALLOW_PRIVATE_NETWORK, resolve: opts.resolveHost, fetch: opts.fetch, timeoutMs: config.RUNRELAY_UPSTREAM_TIMEOUT_MS }),
  }
  // The watcher and the app share one binder (one credential cache per process).
  const binder = composeBinder(platform)
  const watcher = new Watcher({ ledger, clock, random: Math.random, bind: binder.bind, unbind: binder.unbind, ...telemetry })
  const processId = config.RUNRELAY_INSTANCE_ID ?? processName()
  const host = new LocalRunHost(store, ledger, watcher, () => clock.now(), log, { owner: processId, ttlMs: config.RUNRELAY_LEASE_TTL_MS, changes: changeCounterOf(store.client) }, metrics)
  metrics.watchBacklog(() => ({ ...host.backlog(), inFlight: host.ticksInFlight, held: host.heldRuns }))
  const streams = new LocalStreams(store, hub, opts.upgradeWebSocket, {
    heartbeatMs: config.RUNRELAY_HEARTBEAT_MS, maxBufferedBytes: config.RUNRELAY_WS_MAX_BUFFERED_BYTES, metrics,
  })
  const services = composeServices(platform, { hosts: host, log, latestEventId: () => tail.position })
  const jobs = new LocalScheduler({ store, clock, log, config, ...services, changes: changeCounterOf(store.client) })
  // The per-key limit holds across the processes on this database: counts meet there every sync period.
  const syncMs = config.RUNRELAY_RATE_LIMIT_SYNC_MS
  const keyRateLimiter = new KeyRateLimiter(config.RUNRELAY_RATE_LIMIT_PER_MINUTE, () => clock.now(), undefined, { sync: store.keyRates(processId, Math.max(3_000, 4 * syncMs)), intervalMs: syncMs, log })
  await boot(() => keyRateLimiter.start())
  const { app, routeDocs } = composeApp(platform, {
    binder, schedules: services.schedules, hosts: host, streams, log, keyRateLimiter,
    metrics: { scrape: () => metrics.scrape(), token: config.RUNRELAY_METRICS_TOKEN }, telemetry: metrics,
    middleware: tracing ? [tracing.middleware] : [],
  })

  return {
    app, host, hub, tail, streams, store, jobs, metrics,
    /** The app's documented routes (its OpenAPI document is built from them). */
    routeDocs,
    get publicUrl() { return publicUrl },
    /** Tell the runtime the port it listens on, for callback URLs when RUNRELAY_PUBLIC_URL is unset. */
    listeningOn(port: number): void {
      if (config.RUNRELAY_PUBLIC_URL) return
      publicUrl = origin(port)
    },
    rootKeyCreated: root.createdKey,
    /** Watch every unfinished run again (after a restart). */
    // Schedules go first: a `skip` misfire cancels its late run before the host would start it.
    resume: async () => { await jobs.start(); return boot(() => host.resumeAll()) },
    /** Close streams with 1012, then let ticks and commands in flight finish writing. */
    async shutdown(): Promise<void> {
      streams.closeAll()
      await jobs.stop()
      await host.stop()
      await keyRateLimiter.stop()
      if (cacheSync) clearInterval(cacheSync)
      tail.stop()
      await bus?.close()
      // The last spans (the writes just finished) are exported before the process goes.
      await tracing?.shutdown().catch(() => {})
    },
  }
}

/** A name for this process in lease rows: host, pid and a random part (pids repeat across machines and restarts). */
function processName(): string {
  const g = globalThis as { process?: { pid?: number }; Deno?: { pid?: number; hostname?(): string } }
  const pid = g.process?.pid ?? g.Deno?.pid ?? 0
  return `${pid}-${crypto.randomUUID().slice(0, 8)}`
}

