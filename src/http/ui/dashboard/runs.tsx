/** @jsxImportSource hono/jsx/dom */
import { useEffect, useMemo, useState } from 'hono/jsx/dom'
import { api, session, STATUSES, TERMINAL, tokenScope, type Page, type Run, type RunEvent, type Workflow } from './api.ts'
import { Chip } from './components.tsx'
import { ago, duration, label, runDuration } from './format.ts'
import { watchFeed, type LiveState } from './live.ts'
import { TriggerDialog } from './trigger.tsx'
import { errorText, go, showToast } from './ui.tsx'

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

export function Runs({ params, workflows, setLive, canWrite }: { params: URLSearchParams; workflows: Workflow[]; setLive: (s: LiveState | null) => void; canWrite: boolean }) {
  const f = useMemo(() => filtersOf(params), [params.toString()])
  const [runs, setRuns] = useState<Run[]>([])
  const [cursor, setCursor] = useState<string | null>(null)
  const [loading, setLoading] = useState(true)
  const [flash, setFlash] = useState<Set<string>>(new Set())
  const [, tick] = useState(0)
  const [triggering, setTriggering] = useState(false)
  const [self] = useState(() => ({})) // this view, for live.ts (an effect run twice keeps one socket)
  // Whether the list has pages below (a run older than its last row belongs there): read by the
  // live updates, set by every page load, "Load more" included.
  const [paging] = useState(() => ({ more: false }))
  /** A page came in: where the next starts (null: none), and whether the list has pages below. */
  const nextPage = (next: string | null) => { setCursor(next); paging.more = next !== null }

  useEffect(() => {
    let stop = () => {}
    let alive = true
    let loaded = false // the list's load has started
    let early: RunEvent[] | null = [] // events that came before the list (applied on top of it); null once it is there
    const pending = new Map<string, ReturnType<typeof setTimeout>>()
    /** The run as the API has it now: replaces its row, or (a run the list missed) takes its place by creation time. */
    const upsert = (r: Run) => setRuns((list) => {
      const rest = list.filter((x) => x.id !== r.id)
      if (!matches(r, f)) return rest
      const at = rest.findIndex((x) => x.created_at < r.created_at)
      if (at < 0 && paging.more && rest.length === list.length) return rest
      return at < 0 ? [...rest, r] : [...rest.slice(0, at), r, ...rest.slice(at)]
    })
    const apply = (e: RunEvent) => {
      setRuns((list) => {
        const i = list.findIndex((r) => r.id === e.run_id)
        if (i >= 0) {
          if (list[i]!.seq >= e.seq) return list // the list already shows this event (it came in while the list loaded)
          const r = { ...list[i]!, status: e.status, seq: e.seq }
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
      // The event carries the status; the row's other columns come from the run itself, once per
      // burst. A run the list has not seen (its creation came before the feed) is fetched too.
      clearTimeout(pending.get(e.run_id))
      pending.set(e.run_id, setTimeout(() => {
        pending.delete(e.run_id)
        api<Run>('GET', `/v1/runs/${encodeURIComponent(e.run_id)}`).then((r) => { if (alive) upsert(r) }, () => {})
      }, 150))
    }
    const load = () => {
      if (loaded || !alive) return
      loaded = true
      setLoading(true)
      const list = session.isKey
        ? api<Page<Run>>('GET', `/v1/runs?${query(f, null)}`).then((page) => { if (alive) { setRuns(page.items); nextPage(page.next_cursor) } })
        : Promise.all((tokenScope().r ?? []).map((id) => api<Run>('GET', `/v1/runs/${encodeURIComponent(id)}`).catch(() => null))).then((rs) => { if (alive) setRuns(rs.filter((r): r is Run => r !== null)) })
      list.catch((err) => showToast(errorText(err))).finally(() => {
        if (!alive) return
        setLoading(false)
        const before = early ?? []
        early = null
        for (const e of before) apply(e)
      })
    }
    // Live: the tenant feed with the same filters the server can apply; search and time range are
    // applied here. The feed opens first and the list loads once it answers (or after a second
    // without an answer), so a run created between the two is in one or the other.
    const s = tokenScope()
    const live = session.isKey || (s.r ? 1 : 0) + (s.w ? 1 : 0) + (s.t ? 1 : 0) === 1
    if (live) {
      stop = watchFeed({ workflowId: f.workflows, tag: f.tag }, self, {
        onState: (state) => { setLive(state); if (state !== 'connecting') load() },
        onEvent: (e: RunEvent) => { if (early) early.push(e); else apply(e) },
      })
    }
    const fallback = setTimeout(load, 1_000)
    if (!live) load()
    // No page state is set while cleaning up (see RunView).
    return () => { alive = false; stop(); clearTimeout(fallback); for (const t of pending.values()) clearTimeout(t) }
  }, [params.toString()])
  useEffect(() => { const t = setInterval(() => tick((n) => n + 1), 1000); return () => clearInterval(t) }, [])

  const set = (patch: Partial<Filters>) => go(hashOf({ ...f, ...patch }))
  const wfName = (id: string) => workflows.find((w) => w.id === id)?.name ?? id
  const toggle = (xs: string[], x: string) => (xs.includes(x) ? xs.filter((y) => y !== x) : [...xs, x])
  const loadMore = () => api<Page<Run>>('GET', `/v1/runs?${query(f, cursor)}`).then((page) => { setRuns((list) => [...list, ...page.items.filter((r) => !list.some((x) => x.id === r.id))]); nextPage(page.next_cursor) }, (err) => showToast(errorText(err)))
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

/** A tenant with no workflow: what to do first, and one click for the built-in demo. */
export function EmptyTenant({ canWrite }: { canWrite: boolean }) {
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
