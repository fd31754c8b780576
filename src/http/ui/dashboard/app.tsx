/** @jsxImportSource hono/jsx/dom */
import { render, useEffect, useMemo, useState } from 'hono/jsx/dom'
import { api, ApiError, session, signIn, STATUSES, TERMINAL, tokenScope, type Page, type Run, type RunEvent, type Workflow } from './api.ts'
import { Chip, JsonView, StatusBars, ValueBars, Waterfall, type Bucket } from './components.tsx'
import { ago, duration, label, runDuration } from './format.ts'
import { live, type LiveState } from './live.ts'

// ---- routing: the view and its filters live in the URL hash, so a view can be shared and reloaded ----

interface Route { view: 'runs' | 'run' | 'workflows' | 'workflow'; id?: string; params: URLSearchParams }
function parseRoute(): Route {
  const [path = '', query = ''] = location.hash.replace(/^#/, '').split('?')
  const params = new URLSearchParams(query)
  const parts = path.split('/').filter(Boolean)
  if (parts[0] === 'runs' && parts[1]) return { view: 'run', id: decodeURIComponent(parts[1]), params }
  if (parts[0] === 'workflows' && parts[1]) return { view: 'workflow', id: decodeURIComponent(parts[1]), params }
  if (parts[0] === 'workflows') return { view: 'workflows', params }
  return { view: 'runs', params }
}
const go = (hash: string) => { location.hash = hash }
function useRoute(): Route {
  const [route, setRoute] = useState(parseRoute())
  useEffect(() => {
    const on = () => setRoute(parseRoute())
    window.addEventListener('hashchange', on)
    return () => window.removeEventListener('hashchange', on)
  }, [])
  return route
}

// ---- shared state: a toast, the live badge, the workflows ----

let showToast: (msg: string) => void = () => {}
function Toast() {
  const [msg, setMsg] = useState('')
  useEffect(() => {
    let t: ReturnType<typeof setTimeout> | undefined
    showToast = (m) => { setMsg(m); clearTimeout(t); t = setTimeout(() => setMsg(''), 4000) }
  }, [])
  return msg ? <div class="toast" id="toast">{msg}</div> : null
}
const errorText = (err: unknown, action?: string) => err instanceof ApiError && err.status === 403 && action ? `This key may not ${action} (runs:write)` : (err as Error).message

function LiveBadge({ state }: { state: LiveState | 'finished' | null }) {
  if (!state) return null
  const text = { connecting: 'connecting', live: 'live', retrying: 'reconnecting', ended: 'finished', finished: 'finished', refused: 'refused' }[state]
  return <span id="live" class={`live ${state}`}><span class="dot" /><span id="live-text">{text}</span></span>
}

// ---- sign in ----

function SignIn({ onDone }: { onDone: () => void }) {
  const [error, setError] = useState('')
  return (
    <div class="card pad signin">
      <h1>Sign in</h1>
      <p class="muted small">Paste an API key (runs:read; runs:write to trigger, cancel and replay) or a subscriber token. It is kept in this tab only (sessionStorage).</p>
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

// ---- the runs list ----

interface Filters { q: string; workflows: string[]; statuses: string[]; tag: string; from: string; to: string }
const csvParam = (p: URLSearchParams, k: string) => (p.get(k) ?? '').split(',').filter(Boolean)
const filtersOf = (p: URLSearchParams): Filters => ({ q: p.get('q') ?? '', workflows: csvParam(p, 'workflow'), statuses: csvParam(p, 'status'), tag: p.get('tag') ?? '', from: p.get('from') ?? '', to: p.get('to') ?? '' })
function hashOf(f: Filters): string {
  const p = new URLSearchParams()
  if (f.q) p.set('q', f.q)
  if (f.workflows.length) p.set('workflow', f.workflows.join(','))
  if (f.statuses.length) p.set('status', f.statuses.join(','))
  if (f.tag) p.set('tag', f.tag)
  if (f.from) p.set('from', f.from)
  if (f.to) p.set('to', f.to)
  const s = p.toString()
  return `#/runs${s ? `?${s}` : ''}`
}
/** datetime-local (the viewer's time zone) → ISO for the API. */
const isoOfLocal = (v: string) => (v ? new Date(v).toISOString() : '')
function query(f: Filters, cursor: string | null): string {
  const p = new URLSearchParams({ limit: '100' })
  if (f.q) p.set('q', f.q)
  if (f.workflows.length) p.set('workflow_id', f.workflows.join(','))
  if (f.statuses.length) p.set('status', f.statuses.join(','))
  if (f.tag) p.set('tag', f.tag)
  if (f.from) p.set('created_after', isoOfLocal(f.from))
  if (f.to) p.set('created_before', isoOfLocal(f.to))
  if (cursor) p.set('cursor', cursor)
  return p.toString()
}
/** Whether a run (as the feed tells it) belongs in the filtered list. */
function matches(r: Pick<Run, 'id' | 'workflow_id' | 'status' | 'tags' | 'upstream_id' | 'created_at'>, f: Filters): boolean {
  if (f.workflows.length && !f.workflows.includes(r.workflow_id)) return false
  if (f.statuses.length && !f.statuses.includes(r.status)) return false
  if (f.tag && !r.tags.includes(f.tag)) return false
  if (f.q && r.id !== f.q && r.upstream_id !== f.q && !r.tags.includes(f.q)) return false
  if (f.from && Date.parse(r.created_at) < Date.parse(isoOfLocal(f.from))) return false
  if (f.to && Date.parse(r.created_at) >= Date.parse(isoOfLocal(f.to))) return false
  return true
}

function Runs({ params, workflows, setLive, canWrite }: { params: URLSearchParams; workflows: Workflow[]; setLive: (s: LiveState | null) => void; canWrite: boolean }) {
  const f = useMemo(() => filtersOf(params), [params.toString()])
  const [runs, setRuns] = useState<Run[]>([])
  const [cursor, setCursor] = useState<string | null>(null)
  const [loading, setLoading] = useState(true)
  const [flash, setFlash] = useState<Set<string>>(new Set())
  const [, tick] = useState(0)
  const [triggering, setTriggering] = useState(false)

  useEffect(() => {
    let stop = () => {}
    let alive = true
    setLoading(true)
    const load = session.isKey
      ? api<Page<Run>>('GET', `/v1/runs?${query(f, null)}`).then((page) => { if (alive) { setRuns(page.items); setCursor(page.next_cursor) } })
      : Promise.all((tokenScope().r ?? []).map((id) => api<Run>('GET', `/v1/runs/${encodeURIComponent(id)}`).catch(() => null))).then((rs) => { if (alive) setRuns(rs.filter((r): r is Run => r !== null)) })
    load.catch((err) => showToast(errorText(err))).finally(() => {
      if (!alive) return // the filters changed while loading: that view opens its own feed
      setLoading(false)
      // Live: the tenant feed with the same filters the server can apply; search and time range are applied here.
      const s = tokenScope()
      if (!session.isKey && (s.r ? 1 : 0) + (s.w ? 1 : 0) + (s.t ? 1 : 0) !== 1) return
      const p = new URLSearchParams()
      if (f.workflows.length) p.set('workflow_id', f.workflows.join(','))
      if (f.tag) p.set('tag', f.tag)
      const pending = new Map<string, ReturnType<typeof setTimeout>>()
      stop = live(`/v1/stream${p.toString() ? `?${p}` : ''}`, {
        after: session.isKey ? undefined : 0, position: (e) => e.id, onState: setLive,
        onEvent: (e: RunEvent) => {
          setRuns((list) => {
            const i = list.findIndex((r) => r.id === e.run_id)
            if (i >= 0) {
              const r = { ...list[i]!, status: e.status }
              if (typeof e.data.progress === 'number') r.progress = e.data.progress
              if (typeof e.data.message === 'string') r.message = e.data.message
              const next = [...list]
              if (matches(r, f)) next[i] = r; else next.splice(i, 1)
              return next
            }
            const fresh: Run = { id: e.run_id, workflow_id: e.workflow_id, status: e.status, tags: e.tags, created_at: e.at, started_at: null, finished_at: null, duration_ms: null, upstream_id: null, upstream_status: null, progress: null, message: null, input: null, variables: {}, runtime_variables: {}, result: null, error: null, seq: e.seq }
            return e.type === 'run.created' && matches(fresh, f) ? [fresh, ...list] : list
          })
          setFlash((s) => new Set(s).add(e.run_id))
          // The event carries the status; the row's other columns come from the run itself, once per burst.
          clearTimeout(pending.get(e.run_id))
          pending.set(e.run_id, setTimeout(() => {
            pending.delete(e.run_id)
            api<Run>('GET', `/v1/runs/${encodeURIComponent(e.run_id)}`).then((r) => setRuns((list) => list.map((x) => (x.id === r.id ? r : x)).filter((x) => matches(x, f))), () => {})
          }, 150))
        },
      })
    })
    return () => { alive = false; stop(); setLive(null) }
  }, [params.toString()])
  useEffect(() => { const t = setInterval(() => tick((n) => n + 1), 1000); return () => clearInterval(t) }, [])

  const set = (patch: Partial<Filters>) => go(hashOf({ ...f, ...patch }))
  const wfName = (id: string) => workflows.find((w) => w.id === id)?.name ?? id
  const toggle = (xs: string[], x: string) => (xs.includes(x) ? xs.filter((y) => y !== x) : [...xs, x])
  const loadMore = () => api<Page<Run>>('GET', `/v1/runs?${query(f, cursor)}`).then((page) => { setRuns((list) => [...list, ...page.items.filter((r) => !list.some((x) => x.id === r.id))]); setCursor(page.next_cursor) }, (err) => showToast(errorText(err)))
  const filtered = f.q || f.workflows.length || f.statuses.length || f.tag || f.from || f.to

  if (session.isKey && workflows.length === 0 && !filtered && !loading && runs.length === 0) return <EmptyTenant canWrite={session.has('workflows:write')} />
  return (
    <div>
      <div class="row head">
        <div><h1>Runs</h1><div class="small muted" id="runs-count">{loading ? 'loading…' : `${runs.length} run${runs.length === 1 ? '' : 's'}${cursor ? ' (more below)' : ''}`}</div></div>
        <span class="spacer" />
        {canWrite && workflows.length > 0 && <button class="primary" id="trigger-btn" onClick={() => setTriggering(true)}>Trigger run</button>}
      </div>
      <div class="card">
        {session.isKey && (
          <form class="filters" id="filters" onSubmit={(e: Event) => {
            e.preventDefault()
            const el = (e.target as HTMLFormElement).elements
            const v = (n: string) => (el.namedItem(n) as HTMLInputElement).value.trim()
            set({ q: v('q'), tag: v('tag'), from: v('from'), to: v('to') })
          }}>
            <label class="grow">Search<input id="f-q" name="q" type="search" placeholder="run id, upstream id or tag" value={f.q} /></label>
            <label>Tag<input id="f-tag" name="tag" placeholder="tag" value={f.tag} /></label>
            <label>From<input id="f-from" name="from" type="datetime-local" value={f.from} /></label>
            <label>To<input id="f-to" name="to" type="datetime-local" value={f.to} /></label>
            <div class="presets">{([['1h', 3_600_000], ['24h', 86_400_000], ['7d', 7 * 86_400_000]] as const).map(([k, ms]) => (
              <button type="button" class="link" onClick={() => set({ from: new Date(Date.now() - ms - new Date().getTimezoneOffset() * 60_000).toISOString().slice(0, 16), to: '' })}>{k}</button>))}
            </div>
            <button type="submit" id="f-apply">Apply</button>
            <button type="button" id="f-clear" onClick={() => go('#/runs')}>Clear</button>
            <div class="toggles" id="f-status">{STATUSES.map((s) => <button type="button" class={`toggle ${f.statuses.includes(s) ? 'on' : ''}`} data-status={s} aria-pressed={f.statuses.includes(s)} onClick={() => set({ statuses: toggle(f.statuses, s) })}>{label(s)}</button>)}</div>
            {workflows.length > 1 && <div class="toggles" id="f-workflow">{workflows.map((w) => <button type="button" class={`toggle ${f.workflows.includes(w.id) ? 'on' : ''}`} data-workflow={w.id} aria-pressed={f.workflows.includes(w.id)} onClick={() => set({ workflows: toggle(f.workflows, w.id) })}>{w.name}</button>)}</div>}
          </form>
        )}
        <table>
          <thead><tr>{['Run', 'Status', 'Workflow', 'Upstream id', 'Progress', 'Duration', 'Created'].map((t) => <th>{t}</th>)}</tr></thead>
          <tbody id="runs-body">
            {runs.map((r) => (
              <tr data-run={r.id} class={flash.has(r.id) ? 'flash' : ''} onClick={() => go(`#/runs/${encodeURIComponent(r.id)}`)}>
                <td class="c-id"><a class="mono" href={`#/runs/${encodeURIComponent(r.id)}`}>{r.id}</a><div class="small muted">{r.tags.map((t) => <span class="tag">{t}</span>)}</div></td>
                <td class="c-status"><Chip status={r.status} /></td>
                <td class="c-wf">{wfName(r.workflow_id)}</td>
                <td class="c-up mono">{r.upstream_id ?? '—'}</td>
                <td class="c-prog">{typeof r.progress === 'number' ? <span class="row"><progress max="100" value={Math.round(r.progress * 100)} /><span class="small muted">{Math.round(r.progress * 100)}%</span></span> : <span class="muted small">{r.message ?? ''}</span>}</td>
                <td class="c-dur">{duration(runDuration(r, TERMINAL))}</td>
                <td class="c-created small muted">{ago(r.created_at)}</td>
              </tr>
            ))}
          </tbody>
        </table>
        {!loading && runs.length === 0 && <div id="runs-empty" class="empty">{filtered ? 'No runs match these filters.' : canWrite ? 'No runs yet: trigger one.' : 'No runs yet.'}</div>}
        {cursor && <div class="more"><button id="load-more" onClick={loadMore}>Load more</button></div>}
      </div>
      {triggering && <TriggerDialog workflows={workflows} preset={f.workflows[0]} onClose={() => setTriggering(false)} />}
    </div>
  )
}

function TriggerDialog({ workflows, preset, onClose }: { workflows: Workflow[]; preset?: string; onClose: () => void }) {
  return (
    <div class="modal" role="dialog" aria-modal="true">
      <form class="card dlg-body" id="trigger-form" onSubmit={(e: Event) => {
        e.preventDefault()
        const el = (e.target as HTMLFormElement).elements
        const v = (n: string) => (el.namedItem(n) as HTMLInputElement).value
        let variables: unknown
        try { variables = JSON.parse(v('vars') || '{}') } catch { return showToast('Variables must be JSON') }
        const tags = v('tags').split(',').map((s) => s.trim()).filter(Boolean)
        api<Run>('POST', `/v1/workflows/${encodeURIComponent(v('wf'))}/runs`, { variables, tags }).then((r) => { onClose(); showToast(`Triggered ${r.id}`) }, (err) => showToast(errorText(err, 'trigger runs')))
      }}>
        <h2>Trigger a run</h2>
        <label>Workflow<select id="tr-wf" name="wf" required>{workflows.map((w) => <option value={w.id} selected={w.id === preset}>{w.name}</option>)}</select></label>
        <label>Variables (JSON)<textarea id="tr-vars" name="vars">{'{}'}</textarea></label>
        <label>Tags (comma separated)<input id="tr-tags" name="tags" placeholder="team:a, nightly" /></label>
        <div class="row"><span class="spacer" /><button type="button" id="tr-cancel" onClick={onClose}>Cancel</button><button class="primary" id="tr-go" type="submit">Trigger</button></div>
      </form>
    </div>
  )
}

/** A tenant with no workflow: what to do first, and one click for the built-in demo. */
function EmptyTenant({ canWrite }: { canWrite: boolean }) {
  const demo = async () => {
    try {
      const connection = await api<{ id: string }>('POST', '/v1/connections', { name: 'demo', provider: 'demo' })
      await api('POST', '/v1/workflows', { name: 'Demo report', connection_id: connection.id, upstream_workflow_id: 'demo', tags: ['demo'], config: { durationMs: 15_000, steps: 5 }, poll_policy: { first_interval_ms: 500, max_interval_ms: 2000 } })
      location.reload()
    } catch (err) { showToast(errorText(err)) }
  }
  return (
    <div class="card pad onboarding" id="empty-tenant">
      <h1>Nothing here yet</h1>
      <p>runrelay watches runs of <b>workflows</b>. A workflow binds a <b>connection</b> (a provider, its base URL and credentials) to a job upstream.</p>
      <ol>
        <li>Create a connection: <code class="mono">POST /v1/connections</code> with <code class="mono">{'{"name","provider","base_url","credentials"}'}</code>.</li>
        <li>Create a workflow on it: <code class="mono">POST /v1/workflows</code> with <code class="mono">{'{"name","connection_id","upstream_workflow_id"}'}</code>.</li>
        <li>Trigger a run: <code class="mono">POST /v1/workflows/{'{id}'}/runs</code>, and watch it here.</li>
      </ol>
      <p class="small muted">Every route is in the <a href="/docs">API reference</a>.</p>
      {canWrite ? <button class="primary" id="demo-btn" onClick={demo}>Create the demo workflow</button> : <p class="small muted">This key cannot create workflows (workflows:write).</p>}
    </div>
  )
}

// ---- one run ----

function RunView({ id, workflows, setLive, canWrite }: { id: string; workflows: Workflow[]; setLive: (s: LiveState | 'finished' | null) => void; canWrite: boolean }) {
  const [run, setRun] = useState<Run | null>(null)
  const [events, setEvents] = useState<RunEvent[]>([])
  const [missing, setMissing] = useState('')
  const [now, setNow] = useState(Date.now())
  useEffect(() => {
    let stop = () => {}
    let alive = true
    let refresh: ReturnType<typeof setTimeout> | undefined
    setRun(null); setEvents([]); setMissing('')
    const load = () => api<Run>('GET', `/v1/runs/${encodeURIComponent(id)}`).then((r) => { if (alive) setRun(r) })
    load().then(() => {
      if (!alive) return // left before the run loaded: no socket for a page that is gone
      stop = live(`/v1/runs/${encodeURIComponent(id)}/stream`, {
        after: 0, position: (e) => e.seq, onState: (s) => setLive(s === 'ended' ? 'finished' : s),
        onEvent: (e) => {
          setEvents((xs) => [...xs, e])
          setRun((r) => (r ? { ...r, status: e.status } : r))
          // A refresh that fails (signed out meanwhile, a network blip) is dropped: the next event brings another.
          clearTimeout(refresh); refresh = setTimeout(() => { load().catch(() => {}) }, 150)
        },
      })
    }, (err) => setMissing(errorText(err)))
    const t = setInterval(() => setNow(Date.now()), 1000)
    return () => { alive = false; stop(); clearInterval(t); clearTimeout(refresh); setLive(null) }
  }, [id])

  if (missing) return <div class="card pad"><h1>Run not found</h1><p class="muted">{missing}</p><a href="#/runs">← All runs</a></div>
  if (!run) return <div class="muted">loading…</div>
  const open = !TERMINAL.has(run.status)
  const command = (name: string) => api<Run>('POST', `/v1/runs/${encodeURIComponent(id)}/${name}`, {}).then(setRun, (err) => showToast(errorText(err, `${name} runs`)))
  const replay = () => api<Run>('POST', `/v1/runs/${encodeURIComponent(id)}/replay`).then((r) => { showToast(`Replayed as ${r.id}`); go(`#/runs/${encodeURIComponent(r.id)}`) }, (err) => showToast(errorText(err, 'replay runs')))
  const wf = workflows.find((w) => w.id === run.workflow_id)
  const outputs = events.filter((e) => e.type === 'run.output')
  const created = events.find((e) => e.type === 'run.created')
  const kv = (k: string, v: unknown, cls = '', id?: string) => <div class="kv"><b>{k}</b><span class={cls} id={id}>{v as string}</span></div>
  return (
    <div>
      <div class="small crumbs"><a href="#/runs">← All runs</a>{wf && <span> · <a href={`#/workflows/${encodeURIComponent(wf.id)}`}>{wf.name}</a></span>}</div>
      <div class="card pad" id="run-head">
        <div class="row">
          <h1 class="mono">{run.id}</h1><Chip status={run.status} /><span class="spacer" />
          {canWrite && open && run.status === 'running' && <button onClick={() => command('pause')}>Pause</button>}
          {canWrite && open && run.status === 'paused' && <button onClick={() => command('resume')}>Resume</button>}
          {canWrite && open && <button class="danger" id="cancel-btn" onClick={() => { if (confirm('Cancel this run?')) void command('cancel') }}>Cancel</button>}
          {canWrite && <button id="replay-btn" onClick={replay}>Replay</button>}
        </div>
        <div class="grid">
          {kv('Workflow', wf?.name ?? run.workflow_id)}
          {kv('Upstream id', run.upstream_id ?? '—', 'mono')}
          {kv('Upstream status', run.upstream_status ?? '—')}
          {kv('Created', new Date(run.created_at).toLocaleString())}
          {kv('Duration', duration(runDuration(run, TERMINAL)) || '—', '', 'run-dur')}
          {kv('Progress', typeof run.progress === 'number' ? `${Math.round(run.progress * 100)}%` : '—')}
          {kv('Message', run.message ?? '—')}
          {run.replay_of && <div class="kv"><b>Replay of</b><a class="mono" id="replay-of" href={`#/runs/${encodeURIComponent(run.replay_of)}`}>{run.replay_of}</a></div>}
        </div>
        {run.tags.length > 0 && <div class="tags">{run.tags.map((t) => <span class="tag">{t}</span>)}</div>}
      </div>
      <div class="card pad section"><h2>Where the time went</h2><Waterfall run={run} events={events} now={now} /></div>
      <div class="cols">
        <div class="card pad">
          <h2>Data</h2>
          {run.error !== null && <div class="error-box" id="run-error"><JsonView title="Error (upstream status and body)" value={run.error} /></div>}
          {run.result !== null ? <JsonView title="Result" value={run.result} id="result-json" /> : !run.error && <p class="muted">{open ? 'The result appears here when the run finishes.' : 'No result.'}</p>}
          {outputs.length > 0 && <JsonView title={`Outputs (${outputs.length})`} value={outputs.map((e) => e.data)} open={false} id="outputs-json" />}
          <JsonView title="Input" value={run.input ?? created?.data.variables ?? null} open={false} id="input-json" />
          {Object.keys(run.variables).length > 0 && <JsonView title="Variables" value={run.variables} open={false} />}
        </div>
        <div class="card pad">
          <h2>Timeline</h2>
          <ol class="timeline" id="timeline">
            {events.map((e) => (
              <li class={e.type === 'run.status_changed' ? e.status : e.type === 'run.error' ? 'failed' : ''}>
                <div class="ev-head"><b>{e.type.replace('run.', '')}</b>{e.type === 'run.status_changed' && <Chip status={e.status} />}<span class="small muted">#{e.seq} · {new Date(e.at).toLocaleTimeString()}</span></div>
                {Object.keys(e.data).length > 0 && <JsonView title="data" value={e.data} open={false} />}
              </li>
            ))}
          </ol>
        </div>
      </div>
    </div>
  )
}

// ---- workflows and their health ----

function Workflows({ workflows }: { workflows: Workflow[] }) {
  if (workflows.length === 0) return <EmptyTenant canWrite={session.has('workflows:write')} />
  return (
    <div>
      <div class="row head"><h1>Workflows</h1></div>
      <div class="card"><table><thead><tr><th>Name</th><th>Id</th><th>Tags</th></tr></thead>
        <tbody id="workflows-body">{workflows.map((w) => <tr onClick={() => go(`#/workflows/${encodeURIComponent(w.id)}`)}><td><a href={`#/workflows/${encodeURIComponent(w.id)}`}>{w.name}</a></td><td class="mono small">{w.id}</td><td>{w.tags.map((t) => <span class="tag">{t}</span>)}</td></tr>)}</tbody>
      </table></div>
    </div>
  )
}

interface Summary { total: number; counts: Record<string, number>; finished: number; success_rate: number | null; duration_ms: { count: number; p50: number | null; p95: number | null }; upstream_errors: number; timeline: Bucket[]; from: string; to: string; bucket: string }
const RANGES = { '24h': { ms: 86_400_000, bucket: 'hour' }, '7d': { ms: 7 * 86_400_000, bucket: 'day' }, '30d': { ms: 30 * 86_400_000, bucket: 'day' } } as const

/** Fill the buckets with no runs, so the charts' x axis is time. */
function fillBuckets(s: Summary): Bucket[] {
  const step = s.bucket === 'day' ? 86_400_000 : 3_600_000
  const byStart = new Map(s.timeline.map((b) => [Date.parse(b.start), b]))
  const out: Bucket[] = []
  for (let t = Math.floor(Date.parse(s.from) / step) * step; t < Date.parse(s.to); t += step) {
    out.push(byStart.get(t) ?? { start: new Date(t).toISOString(), total: 0, completed: 0, failed: 0, canceled: 0, timed_out: 0, upstream_errors: 0 })
  }
  return out
}

function WorkflowHealth({ id, params, workflows }: { id: string; params: URLSearchParams; workflows: Workflow[] }) {
  const range = (params.get('range') ?? '24h') as keyof typeof RANGES
  const r = RANGES[range] ?? RANGES['24h']
  const [summary, setSummary] = useState<Summary | null>(null)
  const [error, setError] = useState('')
  useEffect(() => {
    const to = Date.now()
    api<Summary>('GET', `/v1/workflows/${encodeURIComponent(id)}/summary?from=${new Date(to - r.ms).toISOString()}&to=${new Date(to).toISOString()}&bucket=${r.bucket}`).then(setSummary, (err) => setError(errorText(err)))
  }, [id, range])
  const wf = workflows.find((w) => w.id === id)
  if (error) return <div class="card pad"><h1>Workflow not found</h1><p class="muted">{error}</p><a href="#/workflows">← Workflows</a></div>
  if (!summary) return <div class="muted">loading…</div>
  const buckets = fillBuckets(summary)
  const rates = buckets.map((b) => { const fin = b.completed + b.failed + b.canceled + b.timed_out; return fin ? b.completed / fin : null })
  const pct = (x: number | null) => (x === null ? '—' : `${Math.round(x * 100)}%`)
  const stat = (k: string, v: string, id: string) => <div class="stat card pad" id={id}><b>{k}</b><span>{v}</span></div>
  return (
    <div>
      <div class="small crumbs"><a href="#/workflows">← Workflows</a> · <a href={`#/runs?workflow=${encodeURIComponent(id)}`}>its runs</a></div>
      <div class="row head">
        <h1>{wf?.name ?? id}</h1><span class="spacer" />
        <div class="toggles" id="range">{Object.keys(RANGES).map((k) => <button type="button" class={`toggle ${k === range ? 'on' : ''}`} onClick={() => go(`#/workflows/${encodeURIComponent(id)}?range=${k}`)}>{k}</button>)}</div>
      </div>
      <div class="stats">
        {stat('Runs', String(summary.total), 'stat-total')}
        {stat('Success rate', pct(summary.success_rate), 'stat-success')}
        {stat('p50 duration', duration(summary.duration_ms.p50) || '—', 'stat-p50')}
        {stat('p95 duration', duration(summary.duration_ms.p95) || '—', 'stat-p95')}
        {stat('Upstream errors', String(summary.upstream_errors), 'stat-errors')}
      </div>
      <div class="card pad section">
        <h2>Runs per {summary.bucket} by status</h2>
        <StatusBars timeline={buckets} id="chart-runs" />
        <div class="legend small">{['completed', 'failed', 'timed_out', 'canceled', 'running'].map((k) => <span><i class={`sw bar-${k}`} />{label(k)}</span>)}</div>
        <h2>Success rate per {summary.bucket}</h2>
        <ValueBars values={rates} max={1} id="chart-success" cls="bar-completed" titles={buckets.map((b, i) => `${b.start}: ${pct(rates[i]!)}`)} />
        <h2>Upstream errors per {summary.bucket}</h2>
        <ValueBars values={buckets.map((b) => b.upstream_errors)} max={Math.max(1, ...buckets.map((b) => b.upstream_errors))} id="chart-errors" cls="bar-failed" titles={buckets.map((b) => `${b.start}: ${b.upstream_errors}`)} />
        <div class="axis small muted"><span>{new Date(summary.from).toLocaleString()}</span><span>{new Date(summary.to).toLocaleString()}</span></div>
      </div>
    </div>
  )
}

// ---- the page ----

function App() {
  const route = useRoute()
  const [signedIn, setSignedIn] = useState(false)
  const [checked, setChecked] = useState(false)
  const [workflows, setWorkflows] = useState<Workflow[]>([])
  const [liveState, setLive] = useState<LiveState | 'finished' | null>(null)
  const start = () => {
    setSignedIn(true)
    if (session.isKey) api<Page<Workflow>>('GET', '/v1/workflows?limit=200').then((p) => setWorkflows(p.items), () => {})
  }
  useEffect(() => {
    if (!session.credential) return setChecked(true)
    signIn(session.credential).then(start, () => session.clear()).finally(() => setChecked(true))
  }, [])
  const canWrite = session.has('runs:write')
  let body
  if (!checked) body = <div class="muted">loading…</div>
  else if (!signedIn) body = <SignIn onDone={start} />
  else if (route.view === 'run') body = <RunView id={route.id!} workflows={workflows} setLive={setLive} canWrite={canWrite} />
  else if (route.view === 'workflow') body = <WorkflowHealth id={route.id!} params={route.params} workflows={workflows} />
  else if (route.view === 'workflows') body = <Workflows workflows={workflows} />
  else body = <Runs params={route.params} workflows={workflows} setLive={setLive} canWrite={canWrite} />
  return (
    <div>
      <header>
        <a class="brand" href="#/runs"><span class="logo" />runrelay</a>
        {signedIn && session.isKey && <nav><a href="#/runs" class={route.view.startsWith('run') ? 'on' : ''}>Runs</a><a href="#/workflows" class={route.view.startsWith('workflow') ? 'on' : ''}>Workflows</a></nav>}
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
