import type { RunEvent } from '../../core/domain.ts'
import type { Publisher } from '../../core/ports.ts'
import { matchesFeedFilter, type FeedFilter } from '../../db/store.ts'

export interface HubSubscriber { push(events: RunEvent[]): void }

/**
 * In-process fan-out (Node and Deno): run rooms and tenant feeds. Publishing is synchronous
 * so, called right after the store commit under the ledger's lock, subscribers see events
 * in exactly the order they were persisted.
 */
export class LocalHub implements Publisher {
  private readonly rooms = new Map<string, Set<HubSubscriber>>()
  private readonly feeds = new Map<string, Map<HubSubscriber, FeedFilter>>()

  publish(tenantId: string, events: RunEvent[]): void {
    if (events.length === 0) return
    const room = this.rooms.get(events[0]!.run_id)
    if (room) for (const s of room) s.push(events)
    const feed = this.feeds.get(tenantId)
    if (feed) {
      for (const [s, filter] of feed) {
        const matching = events.filter((e) => matchesFeedFilter(e, filter))
        if (matching.length) s.push(matching)
      }
    }
  }

  subscribeRun(runId: string, s: HubSubscriber): () => void {
    let room = this.rooms.get(runId)
    if (!room) this.rooms.set(runId, (room = new Set()))
    room.add(s)
    return () => {
      room!.delete(s)
      if (room!.size === 0 && this.rooms.get(runId) === room) this.rooms.delete(runId)
    }
  }

  subscribeFeed(tenantId: string, filter: FeedFilter, s: HubSubscriber): () => void {
    let feed = this.feeds.get(tenantId)
    if (!feed) this.feeds.set(tenantId, (feed = new Map()))
    feed.set(s, filter)
    return () => {
      feed!.delete(s)
      if (feed!.size === 0 && this.feeds.get(tenantId) === feed) this.feeds.delete(tenantId)
    }
  }

  get subscriberCount(): number {
    let n = 0
    for (const r of this.rooms.values()) n += r.size
    for (const f of this.feeds.values()) n += f.size
    return n
  }
}
