// The dashboard's live views ride on @runrelay/client, the code users run: its subscription
// reconnects with backoff, resumes after the last position and delivers each event once. This
// module only maps its states onto the header badge.
import { subscribeFeed, subscribeRun, SubscriptionError, type ConnectionState, type Subscription } from '@runrelay/client'
import { session, type RunEvent } from './api.ts'

export type LiveState = 'connecting' | 'live' | 'retrying' | 'finished' | 'refused'

const BADGE: Record<ConnectionState, LiveState | null> = { connecting: 'connecting', open: 'live', reconnecting: 'retrying', closed: null }

interface Watch { onEvent: (e: RunEvent) => void; onState: (s: LiveState) => void }

/**
 * The live subscription on screen. The dashboard shows one live view at a time, so a new one
 * replaces it. hono/jsx/dom can run a freshly mounted view's effect twice, keeping only the
 * second cleanup, when its parent updates meanwhile (sign-in and the workflow list land while a
 * run page loads): the first subscription then stayed open beside the second, and the run page
 * showed every event twice (8 events as 16, 1 CI run in 3). So the same view (`owner`) asking
 * for the same stream again keeps its one subscription and socket, with the newest handlers.
 */
let onScreen: { key: string; owner: object; stop: () => void; retarget: (w: Watch) => void } | undefined

/** Follow a subscription until stopped: the badge tracks it; a finished run reads "finished", a refusal "refused". */
function follow(key: string, owner: object, open: (handlers: { onEvent: (e: RunEvent) => void; onStateChange: (s: ConnectionState) => void }) => Subscription, w: Watch): () => void {
  if (onScreen && onScreen.key === key && onScreen.owner === owner) { onScreen.retarget(w); return onScreen.stop }
  onScreen?.stop()
  let stopped = false
  let to = w
  let state: LiveState | undefined // the latest, told again to new handlers (a view waits for 'live' to load)
  const tell = (s: LiveState) => { state = s; if (!stopped) to.onState(s) }
  const sub = open({
    onEvent: (e) => { if (!stopped) to.onEvent(e as RunEvent) },
    onStateChange: (s) => { const b = BADGE[s]; if (b) tell(b) },
  })
  sub.finished.then(
    (r) => { if (r.reason === 'completed') tell('finished') },
    (err) => tell(err instanceof SubscriptionError && err.code ? 'refused' : 'retrying'),
  )
  const stop = () => { stopped = true; sub.close(); if (onScreen?.stop === stop) onScreen = undefined }
  onScreen = { key, owner, stop, retarget: (next) => { to = next; if (state) next.onState(state) } }
  return stop
}

/** One run's events from the first (seq 1), then live until it ends; `owner` is the view (one object per mounted view). Returns the stop function. */
export function watchRunEvents(runId: string, owner: object, w: Watch): () => void {
  return follow(`run:${runId}`, owner, (h) => subscribeRun({ token: session.credential, runId, after: 0, ...h }), w)
}

/** The tenant feed (or a token's scope) with the filters the server applies; from the live end for a key, from the start for a token. */
export function watchFeed(filter: { workflowId?: string[]; tag?: string }, owner: object, w: Watch): () => void {
  return follow(`feed:${JSON.stringify(filter)}`, owner, (h) => subscribeFeed({ token: session.credential, workflowId: filter.workflowId, tag: filter.tag || undefined, after: session.isKey ? undefined : 0, ...h }), w)
}
