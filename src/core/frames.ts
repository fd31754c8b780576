import { isTerminal, type RunEvent } from './domain.ts'

// Each event is serialised once however many subscribers receive it.
const eventFrames = new WeakMap<RunEvent, string>()
const eventJson = new WeakMap<RunEvent, string>()
// A batch delivered as the same array to many subscribers (a hub group) is serialised once.
const batchFrames = new WeakMap<RunEvent[], string>()

/** The event as JSON (the SSE `data:` line). */
export function eventToJson(e: RunEvent): string {
  let s = eventJson.get(e)
  if (s === undefined) eventJson.set(e, (s = JSON.stringify(e)))
  return s
}

/** The WebSocket frame of one event, or a batch frame for several. */
export function eventsFrame(events: RunEvent[]): string {
  if (events.length === 1) {
    const e = events[0]!
    let s = eventFrames.get(e)
    if (s === undefined) eventFrames.set(e, (s = `{"type":"event","event":${eventToJson(e)}}`))
    return s
  }
  let s = batchFrames.get(events)
  if (s === undefined) batchFrames.set(events, (s = `{"type":"batch","events":[${events.map(eventToJson).join(',')}]}`))
  return s
}

/** Whether this event ends its run (a terminal status change). */
export function endsRun(e: RunEvent): boolean {
  return e.type === 'run.status_changed' && isTerminal(e.status)
}
