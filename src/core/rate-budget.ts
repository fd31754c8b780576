/**
 * A per-connection request budget (token bucket): every run of a connection draws from the
 * same bucket, so a thousand runs do not hammer one vendor. `take` waits for a token.
 */
export class RateBudget implements RequestBudget {
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

/** Where a request waits for its connection's budget: in this process, or shared through the database. */
export interface RequestBudget {
  /** Wait until a request to `key` fits in `perSecond` (burst up to one second's worth). */
  take(key: string, perSecond: number): Promise<void>
}

/**
 * Reserve one token of `key`'s bucket atomically (capacity max(1, perSecond), refilled at
 * perSecond) and return the tokens left: below zero, the caller waits for its turn.
 */
export type ReserveToken = (key: string, perSecond: number, now: number) => Promise<number>

/** Code of an error raised before a request left (the budget could not be read): such a request certainly did not reach the upstream. */
export const NOT_SENT = 'RUNRELAY_NOT_SENT'

/**
 * A per-connection budget shared by every process on one database: each request reserves a
 * token in one atomic statement (the bucket may go below zero: a queue of reservations) and
 * waits until its token is due. So N processes together keep the connection's rate, not N
 * times it.
 */
export class SharedRateBudget implements RequestBudget {
  constructor(
    private readonly reserve: ReserveToken,
    private readonly now: () => number = Date.now,
    private readonly sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms)),
  ) {}

  /** This process's requests per key wait in line, as in RateBudget: tokens are reserved in order, one after the other's turn. */
  private readonly lines = new Map<string, Promise<void>>()

  take(key: string, perSecond: number): Promise<void> {
    const turn = (this.lines.get(key) ?? Promise.resolve()).then(async () => {
      let left: number
      try {
        left = await this.reserve(key, perSecond, this.now())
      } catch (err) {
        throw Object.assign(new Error(`the request budget of ${key} could not be read: ${(err as Error)?.message ?? err}`), { code: NOT_SENT, cause: err })
      }
      if (left < 0) await this.sleep(Math.ceil((-left / perSecond) * 1000))
    })
    const line = turn.catch(() => {})
    this.lines.set(key, line)
    void line.then(() => { if (this.lines.get(key) === line) this.lines.delete(key) })
    return turn
  }
}
