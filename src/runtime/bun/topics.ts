import type { RunEvent } from '../../core/domain.ts'
import { endsRun, eventsFrame } from '../../core/frames.ts'
import { CLOSE } from '../../core/protocol.ts'
import type { HubSubscriber, LocalHub } from '../local/hub.ts'
import type { NativeTopics, StreamSocket, TopicMember } from '../local/streams.ts'

/** The part of Bun's ServerWebSocket a topic uses. */
export interface TopicSocket {
  subscribe(topic: string): void
  unsubscribe(topic: string): void
}

/** The part of Bun's Server a topic uses. */
export interface TopicPublisher {
  publish(topic: string, data: string): number
}

/** A StreamSocket whose Bun socket can join topics. */
export interface TopicStreamSocket extends StreamSocket {
  readonly ws: TopicSocket
}

/**
 * One run's native topic: a single subscriber in the hub's room that publishes each frame once
 * (µWebSockets writes it to every member), and keeps the member list for the terminal close.
 */
class RunTopic implements HubSubscriber {
  readonly members = new Set<TopicMember>()
  constructor(readonly name: string, private readonly server: TopicPublisher) {}

  push(events: RunEvent[]): void {
    this.server.publish(this.name, eventsFrame(events))
    if (!events.some(endsRun)) return
    // Each member leaves the topic as it ends, so iterate over a copy.
    for (const m of [...this.members]) m.end(CLOSE.NORMAL, 'run finished')
  }
}

const wsOf = (m: TopicMember) => (m.socket as TopicStreamSocket).ws

/**
 * Run rooms on Bun's native topics (`run:<id>`). A slow member is not checked here: Bun's
 * `backpressureLimit` with `closeOnBackpressureLimit` closes a socket whose frame would be
 * dropped, so no event is ever skipped silently (see createBunWebSockets).
 */
export class BunTopics implements NativeTopics {
  private readonly topics = new Map<string, RunTopic>()
  private server: TopicPublisher | undefined

  /** Bun.serve's server, once it is listening (no socket can join before). */
  serving(server: TopicPublisher): void { this.server = server }

  join(hub: LocalHub, runId: string, member: TopicMember): void {
    let topic = this.topics.get(runId)
    if (!topic) {
      if (!this.server) throw new Error('BunTopics: join before serving')
      this.topics.set(runId, (topic = new RunTopic(`run:${runId}`, this.server)))
      hub.joinRun(runId, topic)
    }
    topic.members.add(member)
    wsOf(member).subscribe(topic.name)
  }

  leave(hub: LocalHub, runId: string, member: TopicMember): void {
    const topic = this.topics.get(runId)
    if (!topic || !topic.members.delete(member)) return
    // A closed socket has left its topics already; Bun may refuse the call then.
    try { wsOf(member).unsubscribe(topic.name) } catch { /* closed */ }
    if (topic.members.size > 0) return
    this.topics.delete(runId)
    hub.leaveRun(runId, topic)
  }

  /** Members on native topics, for tests and metrics. */
  get members(): number {
    let n = 0
    for (const t of this.topics.values()) n += t.members.size
    return n
  }
}
