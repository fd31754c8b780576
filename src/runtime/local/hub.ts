import type { RunEvent } from '../../core/domain.ts'
import type { Publisher } from '../../core/ports.ts'
import { matchesFeedFilter, type FeedFilter } from '../../core/run-change.ts'

export interface HubSubscriber { push(events: RunEvent[]): void }

/** Feed subscribers of one tenant with the same filter: it is evaluated once per event for all of them. */
interface FeedGroup {
  filter: FeedFilter
  subs: Set<HubSubscriber>
}

/** A tenant's feed: groups by canonical filter, indexed by workflow id when the filter names workflows. */
class TenantFeed {
  readonly groups = new Map<string, FeedGroup>()
  /** Groups whose filter names workflows, under each of them. */
  readonly byWorkflow = new Map<string, FeedGroup[]>()
  /** Groups whose filter names no workflow: candidates for every event. */
  readonly anyWorkflow: FeedGroup[] = []
  size = 0
}

const sortedSet = <T extends string>(xs: T[] | undefined): T[] | undefined => (xs?.length ? [...new Set(xs)].sort() : undefined)

/** The same key for filters that select the same events (order and duplicates do not matter; empty lists select all). */
export function canonical(f: FeedFilter): { key: string; filter: FeedFilter } {
  const filter: FeedFilter = {}
  const runIds = sortedSet(f.runIds), workflowIds = sortedSet(f.workflowIds), statuses = sortedSet(f.statuses), tags = sortedSet(f.tags)
  if (runIds) filter.runIds = runIds
  if (workflowIds) filter.workflowIds = workflowIds
  if (statuses) filter.statuses = statuses
  if (tags) filter.tags = tags
  return { key: JSON.stringify([runIds, workflowIds, statuses, tags]), filter }
}

const removeFrom = <T>(xs: T[], x: T) => { const i = xs.indexOf(x); if (i >= 0) xs.splice(i, 1) }

/**
 * In-process fan-out (Node and Deno): run rooms and tenant feeds. Publishing is synchronous
 * so, called right after the store commit under the ledger's lock, subscribers see events
 * in exactly the order they were persisted.
 *
 * Feed subscribers are grouped by identical filter: each distinct filter is evaluated once
 * per event, and every subscriber of a group receives the same array (so its frame is
 * serialised once). Groups that name workflows are only looked at for events of those
 * workflows.
 */
export class LocalHub implements Publisher {
  private readonly rooms = new Map<string, Set<HubSubscriber>>()
  private readonly feeds = new Map<string, TenantFeed>()

  publish(tenantId: string, events: RunEvent[]): void {
    if (events.length === 0) return
    const first = events[0]!
    const room = this.rooms.get(first.run_id)
    if (room) for (const s of room) s.push(events)
    const feed = this.feeds.get(tenantId)
    if (!feed) return
    // A commit is one run's, so one workflow's: only its groups and the workflow-agnostic ones can match.
    let oneWorkflow = true
    for (let i = 1; i < events.length; i++) if (events[i]!.workflow_id !== first.workflow_id) { oneWorkflow = false; break }
    if (!oneWorkflow) {
      for (const g of feed.groups.values()) deliver(g, events)
      return
    }
    const named = feed.byWorkflow.get(first.workflow_id)
    if (named) for (let i = 0; i < named.length; i++) deliver(named[i]!, events)
    for (let i = 0; i < feed.anyWorkflow.length; i++) deliver(feed.anyWorkflow[i]!, events)
  }

  subscribeRun(runId: string, s: HubSubscriber): () => void {
    this.joinRun(runId, s)
    return () => this.leaveRun(runId, s)
  }

  /** `subscribeRun` without the closure (a subscriber that keeps its run id leaves with `leaveRun`). */
  joinRun(runId: string, s: HubSubscriber): void {
    let room = this.rooms.get(runId)
    if (!room) this.rooms.set(runId, (room = new Set()))
    room.add(s)
  }

  /** Idempotent. A subscriber's room stays in the map while it holds the subscriber, so this is the room it joined. */
  leaveRun(runId: string, s: HubSubscriber): void {
    const room = this.rooms.get(runId)
    if (!room) return
    room.delete(s)
    if (room.size === 0) this.rooms.delete(runId)
  }

  subscribeFeed(tenantId: string, filter: FeedFilter, s: HubSubscriber): () => void {
    let feed = this.feeds.get(tenantId)
    if (!feed) this.feeds.set(tenantId, (feed = new TenantFeed()))
    const { key, filter: f } = canonical(filter)
    let group = feed.groups.get(key)
    if (!group) {
      group = { filter: f, subs: new Set() }
      feed.groups.set(key, group)
      if (f.workflowIds) {
        for (const w of f.workflowIds) {
          let list = feed.byWorkflow.get(w)
          if (!list) feed.byWorkflow.set(w, (list = []))
          list.push(group)
        }
      } else feed.anyWorkflow.push(group)
    }
    if (group.subs.has(s)) return () => {}
    group.subs.add(s)
    feed.size++
    const g = group, tenantFeed = feed
    let done = false
    return () => {
      if (done) return
      done = true
      g.subs.delete(s)
      tenantFeed.size--
      if (g.subs.size === 0 && tenantFeed.groups.get(key) === g) {
        tenantFeed.groups.delete(key)
        if (g.filter.workflowIds) {
          for (const w of g.filter.workflowIds) {
            const list = tenantFeed.byWorkflow.get(w)
            if (!list) continue
            removeFrom(list, g)
            if (list.length === 0) tenantFeed.byWorkflow.delete(w)
          }
        } else removeFrom(tenantFeed.anyWorkflow, g)
      }
      if (tenantFeed.size === 0 && this.feeds.get(tenantId) === tenantFeed) this.feeds.delete(tenantId)
    }
  }
}

/** The events a group's filter passes, evaluated once, pushed (the same array) to each of its subscribers. */
function deliver(g: FeedGroup, events: RunEvent[]): void {
  let matching = events
  if (events.length === 1) {
    if (!matchesFeedFilter(events[0]!, g.filter)) return
  } else {
    let all = true
    for (const e of events) if (!matchesFeedFilter(e, g.filter)) { all = false; break }
    if (!all) {
      matching = events.filter((e) => matchesFeedFilter(e, g.filter))
      if (matching.length === 0) return
    }
  }
  for (const s of g.subs) s.push(matching)
}
