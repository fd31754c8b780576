/** @jsxImportSource hono/jsx/dom */
import { render, useEffect, useState } from 'hono/jsx/dom'
import { api, session, signIn, type Page, type Workflow } from './api.ts'
import { Connections, ConnectionEdit, WorkflowEdit, Workflows } from './catalog.tsx'
import { Keys, Schedules, Webhooks } from './admin.tsx'
import { WorkflowHealth } from './health.tsx'
import type { LiveState } from './live.ts'
import { RunView } from './run.tsx'
import { Runs } from './runs.tsx'
import { errorText, go, LiveBadge, Toast } from './ui.tsx'

// ---- routing: the view and its filters live in the URL hash, so a view can be shared and reloaded ----

type View = 'runs' | 'run' | 'workflows' | 'workflow' | 'workflow-edit' | 'connections' | 'connection' | 'keys' | 'schedules' | 'webhooks'
interface Route { view: View; id?: string; params: URLSearchParams; key: string }
function parseRoute(): Route {
  const [path = '', query = ''] = location.hash.replace(/^#/, '').split('?')
  const params = new URLSearchParams(query)
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent)
  const r = (view: View, id?: string): Route => ({ view, id, params, key: `${view}:${id ?? ''}` })
  const [top, id, sub] = parts
  if (top === 'runs' && id) return r('run', id)
  if (top === 'workflows' && id === 'new') return r('workflow-edit')
  if (top === 'workflows' && id && sub === 'edit') return r('workflow-edit', id)
  if (top === 'workflows' && id) return r('workflow', id)
  if (top === 'workflows') return r('workflows')
  if (top === 'connections' && id) return r('connection', id === 'new' ? undefined : id)
  if (top === 'connections') return r('connections')
  if (top === 'keys' || top === 'schedules' || top === 'webhooks') return r(top)
  return r('runs')
}
function useRoute(): Route {
  const [route, setRoute] = useState(parseRoute())
  useEffect(() => {
    const on = () => setRoute(parseRoute())
    window.addEventListener('hashchange', on)
    return () => window.removeEventListener('hashchange', on)
  }, [])
  return route
}

// ---- sign in ----

function SignIn({ onDone }: { onDone: () => void }) {
  const [error, setError] = useState('')
  return (
    <div class="card pad signin">
      <h1>Sign in</h1>
      <p class="muted small">Paste an API key (runs:read; runs:write to trigger, cancel and replay; workflows:write and admin to manage) or a subscriber token. It is kept in this tab only (sessionStorage).</p>
      <form class="row" onSubmit={(e: Event) => {
        e.preventDefault()
        const value = ((e.target as HTMLFormElement).elements.namedItem('cred') as HTMLInputElement).value.trim()
        signIn(value).then(onDone, (err) => { session.clear(); setError(errorText(err)) })
      }}>
        <input id="cred" name="cred" type="password" placeholder="rr_… API key or subscriber token" autocomplete="off" required />
        <button class="primary" id="signin-btn" type="submit">Sign in</button>
      </form>
      {error && <p class="small bad" id="signin-error">{error}</p>}
    </div>
  )
}

// ---- the page ----

const NAV: Array<[string, string, (v: View) => boolean, string?]> = [
  ['Runs', '#/runs', (v) => v === 'runs' || v === 'run'],
  ['Workflows', '#/workflows', (v) => v.startsWith('workflow')],
  ['Connections', '#/connections', (v) => v.startsWith('connection'), 'workflows:read'],
  ['Schedules', '#/schedules', (v) => v === 'schedules', 'runs:read'],
  ['Webhooks', '#/webhooks', (v) => v === 'webhooks', 'workflows:read'],
  ['Keys', '#/keys', (v) => v === 'keys', 'admin'],
]

function App() {
  const route = useRoute()
  const [signedIn, setSignedIn] = useState(false)
  const [checked, setChecked] = useState(false)
  const [workflows, setWorkflows] = useState<Workflow[]>([])
  // The badge belongs to the view that set it: another route shows none until its view says so.
  const [live, setLiveOf] = useState<{ key: string; state: LiveState | null }>({ key: '', state: null })
  const loadWorkflows = () => { if (session.isKey) api<Page<Workflow>>('GET', '/v1/workflows?limit=200').then((p) => setWorkflows(p.items), () => {}) }
  const start = () => { setSignedIn(true); loadWorkflows() }
  useEffect(() => {
    if (!session.credential) return setChecked(true)
    signIn(session.credential).then(start, () => session.clear()).finally(() => setChecked(true))
  }, [])
  const canWrite = session.has('runs:write')
  const { view, id, params } = route
  const setLive = (state: LiveState | null) => setLiveOf({ key: route.key, state })
  const liveState = live.key === route.key ? live.state : null
  let body
  // Each view is keyed by its route: a new route mounts a new view and unmounts the old one (its socket with it).
  if (!checked) body = <div class="muted">loading…</div>
  else if (!signedIn) body = <SignIn onDone={start} />
  else if (view === 'run') body = <RunView key={route.key} id={id!} workflows={workflows} setLive={setLive} canWrite={canWrite} />
  else if (view === 'workflow') body = <WorkflowHealth key={route.key} id={id!} params={params} workflows={workflows} />
  else if (view === 'workflow-edit') body = <WorkflowEdit key={route.key} id={id} onSaved={loadWorkflows} />
  else if (view === 'workflows') body = <Workflows key={route.key} workflows={workflows} onChanged={loadWorkflows} />
  else if (view === 'connections') body = <Connections key={route.key} />
  else if (view === 'connection') body = <ConnectionEdit key={route.key} id={id} />
  else if (view === 'keys') body = <Keys key={route.key} />
  else if (view === 'schedules') body = <Schedules key={route.key} workflows={workflows} />
  else if (view === 'webhooks') body = <Webhooks key={route.key} params={params} workflows={workflows} />
  else body = <Runs key={route.key} params={params} workflows={workflows} setLive={setLive} canWrite={canWrite} />
  return (
    <div>
      <header>
        <a class="brand" href="#/runs"><span class="logo" />runrelay</a>
        {signedIn && session.isKey && <nav id="nav">{NAV.filter(([, , , scope]) => !scope || session.has(scope)).map(([text, href, on]) => <a href={href} class={on(view) ? 'on' : ''}>{text}</a>)}</nav>}
        <span class="spacer" />
        <LiveBadge state={signedIn ? liveState : null} />
        <a class="small hide-sm" href="/docs">API reference</a>
        {signedIn && <button id="signout" onClick={() => { session.clear(); setSignedIn(false); go('#/runs') }}>Sign out</button>}
      </header>
      <main id="app">{body}</main>
      <Toast />
    </div>
  )
}

render(<App />, document.getElementById('root')!)
