/** @jsxImportSource hono/jsx/dom */
// Shared pieces of every view: navigation, the toast, error wording, the live badge.
import { useEffect, useState } from 'hono/jsx/dom'
import { ApiError } from './api.ts'
import type { LiveState } from './live.ts'

/** Navigate: the view lives in the hash, so a view can be shared, reloaded and gone back to. */
export const go = (hash: string) => { location.hash = hash }

let toast: (msg: string) => void = () => {}
/** Show a short message at the bottom of the page. */
export const showToast = (msg: string) => toast(msg)
export function Toast() {
  const [msg, setMsg] = useState('')
  useEffect(() => {
    let t: ReturnType<typeof setTimeout> | undefined
    toast = (m) => { setMsg(m); clearTimeout(t); t = setTimeout(() => setMsg(''), 4000) }
  }, [])
  return msg ? <div class="toast" id="toast">{msg}</div> : null
}
/** An error as a sentence; a 403 names the scope the action needs. */
export const errorText = (err: unknown, action?: string, scope = 'runs:write') => err instanceof ApiError && err.status === 403 && action ? `This key may not ${action} (${scope})` : (err as Error).message

export function LiveBadge({ state }: { state: LiveState | null }) {
  if (!state) return null
  const text = { connecting: 'connecting', live: 'live', retrying: 'reconnecting', finished: 'finished', refused: 'refused' }[state]
  return <span id="live" class={`live ${state}`}><span class="dot" /><span id="live-text">{text}</span></span>
}
