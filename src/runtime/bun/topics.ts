import type { RunEvent } from '../../core/domain.ts'
import { endsRun, eventsFrame } from '../../core/frames.ts'
import { CLOSE } from '../../core/protocol.ts'
import type { StreamRequest } from '../../http/hosts.ts'
import { canonical, type HubSubscriber, type LocalHub } from '../local/hub.ts'
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
 * One native topic: a single subscriber in the hub (a run's room, or a tenant's feed group)
 * that publishes each frame once (µWebSockets writes it to every member), and keeps the member
 * list for the close after a run's terminal event.
 */
class Topic implements HubSubscriber {
  readonly members = new Set<TopicMember>()
  /** Takes the topic out of the hub (set once it is in). */
  leaveHub: () => void = () => {}
  constructor(readonly name: string, private readonly server: TopicPublisher, private readonly run: boolean) {}

  push(events: RunEvent[]): void {
    this.server.publish(this.name, eventsFrame(events))
    if (!this.run || !events.some(endsRun)) return
    // Each member leaves the topic as it ends, so iterate over a copy.
    for (const m of [...this.members]) m.end(CLOSE.NORMAL, 'run finished')
  }
}

const wsOf = (m: TopicMember) => (m.socket as TopicStreamSocket).ws

/** The topic of a stream: its run's, or its tenant's with its feed filter (filters selecting the same events share one). */
const topicName = (req: StreamRequest) =>
  req.runId !== undefined ? `run:${req.runId}` : `feed:${req.tenantId}:${canonical(req.filter ?? {}).key}`

/**
 * Run rooms and feed groups on Bun's native topics. A slow member is not checked here: Bun's
 * `backpressureLimit` with `closeOnBackpressureLimit` closes a socket whose frame would be
 * dropped, so no event is ever skipped silently (see createBunWebSockets).
 */
export class BunTopics implements NativeTopics {
  private readonly topics = new Map<string, Topic>()
  private server: TopicPublisher | undefined

  /** Bun.serve's server, once it is listening (no socket can join before). */
  serving(server: TopicPublisher): void { this.server = server }

  join(hub: LocalHub, req: StreamRequest, member: TopicMember): void {
    const name = topicName(req)
    let topic = this.topics.get(name)
    if (!topic) {
      if (!this.server) throw new Error('BunTopics: join before serving')
      const t = (topic = new Topic(name, this.server, req.runId !== undefined))
      this.topics.set(name, t)
      if (req.runId !== undefined) {
        const runId = req.runId
        hub.joinRun(runId, t)
        t.leaveHub = () => hub.leaveRun(runId, t)
      } else t.leaveHub = hub.subscribeFeed(req.tenantId, req.filter ?? {}, t)
    }
    topic.members.add(member)
    wsOf(member).subscribe(name)
  }

  leave(req: StreamRequest, member: TopicMember): void {
    const name = topicName(req)
    const topic = this.topics.get(name)
    if (!topic || !topic.members.delete(member)) return
    // A closed socket has left its topics already; Bun may refuse the call then.
    try { wsOf(member).unsubscribe(name) } catch { /* closed */ }
    if (topic.members.size > 0) return
    this.topics.delete(name)
    topic.leaveHub()
  }
}
