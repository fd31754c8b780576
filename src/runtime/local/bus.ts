import { createClient } from '@redis/client'
import type { Announcer } from './tail.ts'

/** The pub/sub channel every runrelay process on one database shares. */
export const BUS_CHANNEL = 'runrelay:events'
/** Longest wait between two reconnection attempts. */
const MAX_RECONNECT_DELAY_MS = 2_000

export interface BusOptions {
  /** Another process committed events up to this id. */
  onNotice: (maxEventId: number) => void
  /** The bus is reachable again after a fault: notices may have been lost meanwhile. */
  onRecovered: () => void
  log: (msg: string, extra?: Record<string, unknown>) => void
  /** How often the tail reads the table while the bus is down (for the log line). */
  fallbackIntervalMs: number
}

export interface Bus extends Announcer {
  close(): Promise<void>
}

/**
 * Commit notices between processes over Redis (or Valkey) pub/sub: one `PUBLISH` of the highest
 * committed event id per burst of commits, one subscription per process. Notices only: the
 * database is the truth and the tail finds what a lost notice would have said, so a bus that is
 * down delays delivery to the tail's period and nothing else. Connecting never blocks the
 * start: both connections retry on their own (up to every 2 s) until `close`.
 */
export function connectRedisBus(url: string, opts: BusOptions): Bus {
  const reconnectStrategy = (retries: number) => Math.min(50 * 2 ** retries, MAX_RECONNECT_DELAY_MS)
  // Publishing while disconnected fails at once instead of queueing stale notices for later.
  const publisher = createClient({ url, disableOfflineQueue: true, socket: { reconnectStrategy, connectTimeout: 2_000 } })
  const subscriber = publisher.duplicate()
  let down = false
  let everReady = false
  let closed = false
  let subscribed = false

  const meanwhile = opts.fallbackIntervalMs > 0
    ? `other processes' events are read from the events table every ${opts.fallbackIntervalMs} ms meanwhile`
    : 'the tail\'s period is off (RUNRELAY_TAIL_INTERVAL_MS=0): other processes\' events wait for the bus or a commit here'
  const fault = (err: unknown) => {
    if (closed || down) return
    down = true
    opts.log(everReady ? `bus: connection lost, reconnecting; ${meanwhile}` : `bus: unreachable at start, retrying; ${meanwhile}`, {
      error: String((err as Error)?.message ?? err),
    })
  }
  // Errors are reported through the subscriber; the publisher's mirror them (same server).
  subscriber.on('error', fault)
  publisher.on('error', () => {})
  subscriber.on('ready', () => {
    if (closed) return
    if (down || !everReady) opts.log(everReady ? 'bus: connected again; live delivery through the bus resumed' : 'bus: connected', { channel: BUS_CHANNEL })
    const recovered = down
    down = false
    everReady = true
    // node-redis has subscribed again before 'ready'. Notices sent while it was down are gone:
    // read the table once now rather than at the next period.
    if (recovered && subscribed) opts.onRecovered()
  })

  const listener = (message: string) => {
    const id = Number(message)
    if (Number.isSafeInteger(id) && id > 0) opts.onNotice(id)
  }
  // node-redis subscribes again by itself after every reconnect (before it is 'ready').
  subscriber.connect()
    .then(() => subscriber.subscribe(BUS_CHANNEL, listener))
    .then(() => { subscribed = true; opts.onRecovered() })
    .catch(() => { /* closed before it connected */ })
  publisher.connect().catch(() => {})

  /** The highest id this process could not announce (its publisher was down): sent once it is back. */
  let unannounced = 0
  let publishFailing = false
  const send = (maxEventId: number) => {
    publisher.publish(BUS_CHANNEL, String(maxEventId)).then(() => { publishFailing = false }, (err) => {
      if (maxEventId > unannounced) unannounced = maxEventId
      // A lost connection is reported by the subscriber; anything else (a refused PUBLISH) once here.
      if (down || closed || publishFailing || !publisher.isReady) return
      publishFailing = true
      opts.log(`bus: publishing a notice failed; other processes find this process's events through their own period`, { error: String((err as Error)?.message ?? err) })
    })
  }
  // Other processes may have come back before this one's publisher: tell them what they missed.
  publisher.on('ready', () => {
    if (closed || unannounced === 0) return
    const id = unannounced
    unannounced = 0
    send(id)
  })

  return {
    announce(maxEventId) {
      if (closed) return
      if (!publisher.isReady) { if (maxEventId > unannounced) unannounced = maxEventId; return }
      send(maxEventId)
    },
    async close() {
      closed = true
      await Promise.allSettled([publisher.isOpen ? publisher.close() : undefined, subscriber.isOpen ? subscriber.close() : undefined])
      // A client still connecting is stopped too (close() needs an open socket).
      for (const c of [publisher, subscriber]) { try { c.destroy() } catch { /* already closed */ } }
    },
  }
}
