/**
 * A per-connection request budget (token bucket): every run of a connection draws from the
 * same bucket, so a thousand runs do not hammer one vendor. `take` waits for a token.
 */
export class RateBudget {
  private readonly buckets = new Map<string, { tokens: number; at: number; queue: Promise<void> }>()

  constructor(private readonly now: () => number = Date.now, private readonly sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))) {}

  /** Wait until a request to `key` fits in `perSecond` (burst up to one second's worth). */
  take(key: string, perSecond: number): Promise<void> {
    let b = this.buckets.get(key)
    if (!b) this.buckets.set(key, (b = { tokens: Math.max(1, perSecond), at: this.now(), queue: Promise.resolve() }))
    const bucket = b
    // Requests wait in line so that tokens are handed out in order.
    const turn = bucket.queue.then(async () => {
      for (;;) {
        const now = this.now()
        bucket.tokens = Math.min(Math.max(1, perSecond), bucket.tokens + ((now - bucket.at) / 1000) * perSecond)
        bucket.at = now
        if (bucket.tokens >= 1) { bucket.tokens -= 1; return }
        await this.sleep(Math.ceil(((1 - bucket.tokens) / perSecond) * 1000))
      }
    })
    bucket.queue = turn
    return turn
  }
}
