import { ApiError } from './errors.ts'

/** Where processes that share a database meet: push what this process accepted per key, get back the global buckets. */
export interface KeyRateSync {
  /** Subtract `spent` (key → requests accepted since the last call) from the shared buckets; their tokens left and the number of live processes. */
  sync(spent: ReadonlyMap<string, number>, perMinute: number, now: number): Promise<{ tokens: Map<string, number>; processes: number }>
  /** This process leaves (shutdown): stop counting it. */
  leave(): Promise<void>
}

interface Bucket {
  /** This process's view of the key's bucket: the global tokens at the last sync, minus what it accepted since, plus refill. */
  tokens: number
  at: number
  /** Requests accepted here and not yet pushed to the shared bucket. */
  unsynced: number
  /** Last request (accepted or refused): keys seen within a minute are synced even when idle here. */
  seen: number
  /** The tokens at the start of this sync period and what this process accepted since: its share is (base + refill) / processes. */
  periodBase: number
  periodAt: number
  periodSpent: number
}

/** How often a process that accepted nothing, but saw a key within the last minute, syncs anyway (its heartbeat, and the others' spending). */
const IDLE_SYNC_EVERY_MS = 1_000
/** A key seen (accepted or refused) within this long is synced even when this process accepted nothing for it. */
const KEY_ACTIVE_MS = 60_000

/**
 * Per-key request budget: a token bucket of `perMinute` requests that refills continuously.
 * Alone (or with no `sync`, as on Workers: per isolate) it is in memory. With a `sync` (Node, Deno,
 * Bun on one database) every process keeps its local bucket and, every sync period, pushes what
 * it accepted per key in one batched upsert and takes back the global bucket, so the others'
 * requests lower its allowance; between syncs each process spends at most 1/N (N live processes)
 * of the tokens it saw plus 1/N of the refill. No database round trip on a request. A process
 * with no key active for a minute stops syncing (and so stops counting among the N) until its
 * next request. Bounded: full buckets carry no information and are dropped first when the table grows.
 */
export class KeyRateLimiter {
  private readonly buckets = new Map<string, Bucket>()
  private processes = 1
  private timer: ReturnType<typeof setInterval> | undefined
  private syncing: Promise<void> | undefined
  private failing = false
  private lastSyncAt = -Infinity
  /** The last sync period was skipped because no key was active here: the next request syncs at once. */
  private dormant = false

  constructor(
    private readonly perMinute: number,
    private readonly now: () => number,
    private readonly maxKeys = 50_000,
    private readonly shared?: { sync: KeyRateSync; intervalMs: number; log?: (msg: string, extra?: Record<string, unknown>) => void },
  ) {}

  /** Take one request from `key`'s bucket, or throw a 429 with Retry-After (seconds). */
  take(key: string): void {
    if (this.perMinute <= 0) return
    const now = this.now()
    // Back from a stretch without keys: refresh the view of the others (and announce this process)
    // now, not a period later; after this request is counted, so the sync carries it.
    if (this.dormant) { this.dormant = false; queueMicrotask(() => { void this.syncNow() }) }
    const ratePerMs = this.perMinute / 60_000
    let b = this.buckets.get(key)
    if (!b) {
      if (this.buckets.size >= this.maxKeys) this.sweep(now)
      this.buckets.set(key, (b = { tokens: this.perMinute, at: now, unsynced: 0, seen: now, periodBase: this.perMinute, periodAt: now, periodSpent: 0 }))
    }
    b.tokens = Math.min(this.perMinute, b.tokens + (now - b.at) * ratePerMs)
    b.at = now
    b.seen = now
    const n = this.processes
    // Several processes: this one may spend only its share of what it saw at the last sync (plus refill) until the next.
    const shareDeficit = n <= 1 ? 0 : b.periodSpent + 1 - (b.periodBase + (now - b.periodAt) * ratePerMs) / n
    if (b.tokens >= 1 && shareDeficit <= 0) { b.tokens -= 1; b.unsynced += 1; b.periodSpent += 1; return }
    // A share runs out until the next sync at the latest (which starts a new period); the bucket's own deficit is the real wait.
    const waitMs = Math.max((1 - b.tokens) / ratePerMs, Math.min((shareDeficit * n) / ratePerMs, this.shared?.intervalMs ?? 0))
    const retryAfter = Math.max(1, Math.ceil(waitMs / 1000))
    throw new ApiError(429, 'rate_limited', `too many requests for this key: at most ${this.perMinute} a minute`, [{ retry_after_seconds: retryAfter }], { 'Retry-After': String(retryAfter) })
  }

  /** Sync once (so the number of processes is known before the first request), then every sync period. */
  async start(): Promise<void> {
    if (!this.shared || this.perMinute <= 0 || this.timer) return
    await this.syncNow()
    this.timer = setInterval(() => { void this.syncNow() }, this.shared.intervalMs)
    ;(this.timer as { unref?: () => void }).unref?.()
  }

  /** Push what is still unsynced and leave: the other processes stop counting this one. */
  async stop(): Promise<void> {
    if (!this.timer || !this.shared) return
    clearInterval(this.timer)
    this.timer = undefined
    await this.syncing
    await this.syncNow()
    await this.shared.sync.leave().catch(() => {})
  }

  /** One sync period: push each key's accepted requests, take back the global tokens (minus what was accepted meanwhile). */
  syncNow(): Promise<void> {
    if (this.syncing || !this.shared) return this.syncing ?? Promise.resolve()
    const shared = this.shared
    const run = async () => {
      const now = this.now()
      const spent = new Map<string, number>()
      for (const [key, b] of this.buckets) {
        if (b.unsynced > 0 || now - b.seen < KEY_ACTIVE_MS) spent.set(key, b.unsynced)
        b.unsynced = 0
      }
      // No key active here for a minute (or ever, after the first sync): a process that serves no
      // keyed request takes no share of any bucket, so it writes nothing and drops out of the
      // others' count of live processes once its last heartbeat ages past the window. Its
      // heartbeat was the only commit of an idle process, and with several processes on one
      // file each one's commit woke the others' idle passes once a second (issue 26).
      if (spent.size === 0 && this.lastSyncAt > -Infinity) { this.dormant = true; return }
      // Nothing accepted here since the last sync: a write (and fsync) every period buys nothing but
      // fresher views of the others' spending, which the 1/N share already bounds. The heartbeat
      // (liveness window ≥ 3 s) still goes out once a second.
      if (now - this.lastSyncAt < IDLE_SYNC_EVERY_MS && ![...spent.values()].some((n) => n > 0)) return
      let result: Awaited<ReturnType<KeyRateSync['sync']>>
      try {
        result = await shared.sync.sync(spent, this.perMinute, now)
      } catch (err) {
        // Keep the counts for the next try; meanwhile each process limits on its own.
        for (const [key, n] of spent) { const b = this.buckets.get(key); if (b) b.unsynced += n }
        if (!this.failing) shared.log?.('the per-key rate limit could not sync with the database: each process limits on its own until it can', { error: String((err as Error)?.message ?? err) })
        this.failing = true
        return
      }
      if (this.failing) shared.log?.('the per-key rate limit syncs with the database again')
      this.failing = false
      this.lastSyncAt = now
      this.processes = result.processes
      for (const [key, tokens] of result.tokens) {
        const b = this.buckets.get(key)
        if (!b) continue
        b.tokens = tokens - b.unsynced
        b.at = now
        b.periodBase = Math.max(0, tokens)
        b.periodAt = now
        b.periodSpent = b.unsynced
      }
    }
    this.syncing = run().finally(() => { this.syncing = undefined })
    return this.syncing
  }

  private sweep(now: number): void {
    const ratePerMs = this.perMinute / 60_000
    for (const [k, b] of this.buckets) if (b.unsynced === 0 && b.tokens + (now - b.at) * ratePerMs >= this.perMinute) this.buckets.delete(k)
    // Still full of busy keys: forget the oldest (they start again with a full bucket).
    for (const k of this.buckets.keys()) {
      if (this.buckets.size < this.maxKeys) break
      this.buckets.delete(k)
    }
  }
}
