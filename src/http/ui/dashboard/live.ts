// The dashboard's live views ride on @runrelay/client, the code users run: its subscription
// reconnects with backoff, resumes after the last position and delivers each event once. This
// module only maps its states onto the header badge.
import { subscribeFeed, subscribeRun, SubscriptionError, type ConnectionState, type Subscription } from '@runrelay/client'
import { session, type RunEvent } from './api.ts'

export type LiveState = 'connecting' | 'live' | 'retrying' | 'finished' | 'refused'

const BADGE: Record<ConnectionState, LiveState | null> = { connecting: 'connecting', open: 'live', reconnecting: 'retrying', closed: null }

interface Watch { onEvent: (e: RunEvent) => void; onState: (s: LiveState) => void }

/** Follow a subscription until stopped: the badge tracks it; a finished run reads "finished", a refusal "refused". */
function follow(open: (handlers: { onEvent: (e: RunEvent) => void; onStateChange: (s: ConnectionState) => void }) => Subscription, w: Watch): () => void {
  let stopped = false
  const sub = open({
    onEvent: (e) => { if (!stopped) w.onEvent(e as RunEvent) },
    onStateChange: (s) => { const b = BADGE[s]; if (!stopped && b) w.onState(b) },
  })
  sub.finished.then(
    (r) => { if (!stopped && r.reason === 'completed') w.onState('finished') },
    (err) => { if (!stopped) w.onState(err instanceof SubscriptionError && err.code ? 'refused' : 'retrying') },
  )
  return () => { stopped = true; sub.close() }
}

/** One run's events from the first (seq 1), then live until it ends. Returns the stop function. */
export function watchRunEvents(runId: string, w: Watch): () => void {
  return follow((h) => subscribeRun({ token: session.credential, runId, after: 0, ...h }), w)
}

/** The tenant feed (or a token's scope) with the filters the server applies; from the live end for a key, from the start for a token. */
export function watchFeed(filter: { workflowId?: string[]; tag?: string }, w: Watch): () => void {
  return follow((h) => subscribeFeed({ token: session.credential, workflowId: filter.workflowId, tag: filter.tag || undefined, after: session.isKey ? undefined : 0, ...h }), w)
}
