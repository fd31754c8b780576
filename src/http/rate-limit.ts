import { ApiError } from './errors.ts'

/**
 * Per-key request budget: a token bucket of `perMinute` requests that refills continuously.
 * In memory, per instance (per isolate on Workers): a limit that protects one process from
 * one key's flood, not a global quota. Bounded: full buckets carry no information and are
 * dropped first when the table grows.
 */
export class KeyRateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>()

  constructor(private readonly perMinute: number, private readonly now: () => number, private readonly maxKeys = 50_000) {}

  /** Take one request from `key`'s bucket, or throw a 429 with Retry-After (seconds). */
  take(key: string): void {
    if (this.perMinute <= 0) return
    const now = this.now()
    const ratePerMs = this.perMinute / 60_000
    let b = this.buckets.get(key)
    if (!b) {
      if (this.buckets.size >= this.maxKeys) this.sweep(now)
      this.buckets.set(key, (b = { tokens: this.perMinute, at: now }))
    }
    b.tokens = Math.min(this.perMinute, b.tokens + (now - b.at) * ratePerMs)
    b.at = now
    if (b.tokens >= 1) { b.tokens -= 1; return }
    const retryAfter = Math.max(1, Math.ceil((1 - b.tokens) / ratePerMs / 1000))
    throw new ApiError(429, 'rate_limited', `too many requests for this key: at most ${this.perMinute} a minute`, [{ retry_after_seconds: retryAfter }], { 'Retry-After': String(retryAfter) })
  }

  private sweep(now: number): void {
    const ratePerMs = this.perMinute / 60_000
    for (const [k, b] of this.buckets) if (b.tokens + (now - b.at) * ratePerMs >= this.perMinute) this.buckets.delete(k)
    // Still full of busy keys: forget the oldest (they start again with a full bucket).
    for (const k of this.buckets.keys()) {
      if (this.buckets.size < this.maxKeys) break
      this.buckets.delete(k)
    }
  }
}
