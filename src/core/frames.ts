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

/** The SSE frame of an event; `id` is its position (the seq on a run stream, the event id on the feed). */
export function sseFrame(e: RunEvent, id: number): string {
  // JSON.stringify escapes newlines, so the data is one line.
  return `id: ${id}\nevent: ${e.type}\ndata: ${eventToJson(e)}\n\n`
}

/** The first frame of every SSE stream: a dropped client reconnects after one second. */
export const sseRetryFrame = 'retry: 1000\n\n'

/** An SSE comment sent while a stream is idle, so proxies keep it open. */
export const sseHeartbeatFrame = ': heartbeat\n\n'

/** The last frame a slow SSE consumer gets before its stream ends: reconnect with Last-Event-ID. */
export const sseSlowConsumer = `event: error\ndata: ${JSON.stringify({ code: 'slow_consumer', message: 'reconnect with Last-Event-ID' })}\n\n`

/** Whether this event ends its run (a terminal status change). */
export function endsRun(e: RunEvent): boolean {
  return e.type === 'run.status_changed' && isTerminal(e.status)
}
