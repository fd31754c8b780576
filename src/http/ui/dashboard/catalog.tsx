/** @jsxImportSource hono/jsx/dom */
// The catalog: connections (write-only credentials, a connection test, discovery of upstream
// workflows) and workflows (template, poll policy, tags, variables schema).
import { useEffect, useState } from 'hono/jsx/dom'
import { api, session, type Connection, type Page, type Workflow } from './api.ts'
import { errorText, go, showToast } from './ui.tsx'

const PROVIDERS = ['http', 'demo', 'wokelo', 'pipelinegeneration', 'wiv', 'indigenius', 'interactly']
const enc = encodeURIComponent

/** The named form controls' values. */
const valuesOf = (form: HTMLFormElement) => (n: string) => { const el = form.elements.namedItem(n) as HTMLInputElement | null; return el ? (el.type === 'checkbox' ? String(el.checked) : el.value.trim()) : '' }
/** Parse a JSON field; an empty field is `fallback`. Throws a message naming the field. */
function json(label: string, text: string, fallback: unknown): unknown {
  if (!text) return fallback
  try { return JSON.parse(text) } catch { throw new Error(`${label} must be JSON`) }
}
const pretty = (v: unknown) => (v === undefined || v === null ? '' : JSON.stringify(v, null, 2))

function useList<T>(path: string): [T[] | null, () => void, string] {
  const [items, setItems] = useState<T[] | null>(null)
  const [error, setError] = useState('')
  const load = () => api<Page<T>>('GET', path).then((p) => setItems(p.items), (err) => { setItems([]); setError(errorText(err, 'read this', 'workflows:read')) })
  useEffect(() => { void load() }, [path])
  return [items, load, error]
}

// ---- connections ----

export function Connections() {
  const [items, , error] = useList<Connection>('/v1/connections?limit=200')
  const canWrite = session.has('workflows:write')
  return (
    <div>
      <div class="row head"><h1>Connections</h1><span class="spacer" />{canWrite && <a class="btn primary" id="conn-new" href="#/connections/new">New connection</a>}</div>
      {error && <p class="bad small">{error}</p>}
      <div class="card"><table class="list"><thead><tr><th>Name</th><th>Provider</th><th>Base URL</th><th>Credentials</th></tr></thead>
        <tbody id="connections-body">{(items ?? []).map((c) => (
          <tr data-id={c.id} onClick={() => go(`#/connections/${enc(c.id)}`)}>
            <td><a href={`#/connections/${enc(c.id)}`}>{c.name}</a></td><td>{c.provider}</td><td class="mono small">{c.base_url}</td>
            <td class="small muted">{c.credential_fields.join(', ') || '—'}</td>
          </tr>))}</tbody></table>
        {items?.length === 0 && !error && <div class="empty">No connections yet.</div>}
      </div>
    </div>
  )
}

interface Upstream { id: string; name?: string; description?: string }

export function ConnectionEdit({ id }: { id?: string }) {
  const [conn, setConn] = useState<Connection | null>(null)
  const [extra, setExtra] = useState<string[]>([])
  const [test, setTest] = useState<{ ok: boolean; message?: string } | null>(null)
  const [upstream, setUpstream] = useState<Upstream[] | null>(null)
  const [busy, setBusy] = useState(false)
  useEffect(() => { if (id) api<Connection>('GET', `/v1/connections/${enc(id)}`).then(setConn, (err) => showToast(errorText(err))) }, [id])
  if (id && !conn) return <div class="muted">loading…</div>
  const canWrite = session.has('workflows:write')
  const stored = conn?.credential_fields ?? []
  const credNames = [...stored, ...extra]
  const save = async (form: HTMLFormElement) => {
    const v = valuesOf(form)
    const credentials: Record<string, string> = {}
    // Write-only: a blank value keeps the stored one; only what is typed is sent.
    form.querySelectorAll<HTMLInputElement>('[data-cred]').forEach((el) => {
      const name = el.dataset.cred || (form.querySelector<HTMLInputElement>(`[data-cred-name="${el.dataset.row}"]`)?.value.trim() ?? '')
      if (name && el.value) credentials[name] = el.value
    })
    const body: Record<string, unknown> = { name: v('name'), config: json('Config', v('config'), {}), credentials }
    if (v('base_url')) body.base_url = v('base_url')
    body.rate_limit_per_second = v('rate') ? Number(v('rate')) : null
    if (!conn) body.provider = v('provider')
    const saved = conn ? await api<Connection>('PATCH', `/v1/connections/${enc(conn.id)}`, body) : await api<Connection>('POST', '/v1/connections', body)
    showToast(`Saved ${saved.name}`)
    if (conn) { setConn(saved); setExtra([]); form.querySelectorAll<HTMLInputElement>('[data-cred]').forEach((el) => { el.value = '' }) } else go(`#/connections/${enc(saved.id)}`)
  }
  return (
    <div>
      <div class="small crumbs"><a href="#/connections">← Connections</a></div>
      <form class="card pad form" id="conn-form" onSubmit={(e: Event) => {
        e.preventDefault(); setBusy(true)
        save(e.target as HTMLFormElement).catch((err) => showToast(errorText(err, 'change connections', 'workflows:write'))).finally(() => setBusy(false))
      }}>
        <h1>{conn ? conn.name : 'New connection'}</h1>
        <label>Name<input name="name" id="c-name" required value={conn?.name ?? ''} /></label>
        <label>Provider{conn ? <input value={conn.provider} disabled /> : <select name="provider" id="c-provider">{PROVIDERS.map((p) => <option value={p}>{p}</option>)}</select>}</label>
        <label>Base URL<input name="base_url" id="c-base" type="url" placeholder="the provider's default" value={conn?.base_url ?? ''} /></label>
        <label>Rate limit (requests per second)<input name="rate" id="c-rate" type="number" step="any" min="0" value={conn?.rate_limit_per_second ?? ''} /></label>
        <label>Config (JSON)<textarea name="config" id="c-config">{pretty(conn?.config ?? {})}</textarea></label>
        <fieldset class="creds" id="c-creds"><legend>Credentials <span class="muted small">write-only: stored encrypted, never shown; leave blank to keep</span></legend>
          {credNames.map((n, i) => i < stored.length
            ? <label>{n}<input type="password" autocomplete="new-password" data-cred={n} placeholder="stored (unchanged)" /></label>
            : <div class="row cred-row"><input data-cred-name={String(i)} placeholder="name (token, apiKey…)" /><input type="password" autocomplete="new-password" data-cred="" data-row={String(i)} placeholder="value" /></div>)}
          <button type="button" class="link" id="c-add-cred" onClick={() => setExtra([...extra, ''])}>+ Add a credential</button>
        </fieldset>
        {canWrite && <div class="row"><span class="spacer" /><button class="primary" id="c-save" type="submit" disabled={busy}>{conn ? 'Save' : 'Create'}</button></div>}
      </form>
      {conn && (
        <div class="card pad section" id="conn-tools">
          <div class="row">
            {canWrite && <button id="c-test" onClick={() => { setTest(null); api<{ ok: boolean; message?: string }>('POST', `/v1/connections/${enc(conn.id)}/test`).then(setTest, (err) => setTest({ ok: false, message: errorText(err) })) }}>Test connection</button>}
            <button id="c-discover" onClick={() => api<{ items: Upstream[] }>('GET', `/v1/connections/${enc(conn.id)}/workflows`).then((r) => setUpstream(r.items), (err) => showToast(errorText(err)))}>Discover upstream workflows</button>
            <span class="spacer" />
            {canWrite && <button class="danger" id="c-delete" onClick={() => {
              if (confirm(`Delete ${conn.name}?`)) api('DELETE', `/v1/connections/${enc(conn.id)}`).then(() => go('#/connections'), (err) => showToast(errorText(err)))
            }}>Delete</button>}
          </div>
          {test && <p id="c-test-result" class={test.ok ? 'ok' : 'bad'}>{test.ok ? 'OK' : 'Failed'}{test.message ? `: ${test.message}` : ''}</p>}
          {upstream && <table class="list"><thead><tr><th>Upstream workflow</th><th>Name</th><th /></tr></thead><tbody id="upstream-body">{upstream.map((u) => (
            <tr data-upstream={u.id}><td class="mono small">{u.id}</td><td>{u.name ?? ''}<div class="small muted">{u.description ?? ''}</div></td>
              <td>{session.has('workflows:write') && <a class="btn" href={`#/workflows/new?connection=${enc(conn.id)}&upstream=${enc(u.id)}&name=${enc(u.name ?? u.id)}`}>Use</a>}</td></tr>))}</tbody></table>}
          {upstream?.length === 0 && <p class="muted">The upstream lists no workflows.</p>}
        </div>
      )}
    </div>
  )
}

// ---- workflows ----

export function Workflows({ workflows, onChanged }: { workflows: Workflow[]; onChanged: () => void }) {
  useEffect(() => { onChanged() }, [])
  const canWrite = session.has('workflows:write')
  return (
    <div>
      <div class="row head"><h1>Workflows</h1><span class="spacer" />{canWrite && <a class="btn primary" id="wf-new" href="#/workflows/new">New workflow</a>}</div>
      <div class="card"><table class="list"><thead><tr><th>Name</th><th>Id</th><th>Tags</th><th /></tr></thead>
        <tbody id="workflows-body">{workflows.map((w) => (
          <tr data-id={w.id}><td><a href={`#/workflows/${enc(w.id)}`}>{w.name}</a></td><td class="mono small">{w.id}</td><td>{w.tags.map((t) => <span class="tag">{t}</span>)}</td>
            <td class="actions">{canWrite && <a class="btn" href={`#/workflows/${enc(w.id)}/edit`}>Edit</a>}</td></tr>))}</tbody>
      </table>{workflows.length === 0 && <div class="empty" id="workflows-empty">No workflows yet.{canWrite ? ' Create a connection, then a workflow on it.' : ''}</div>}</div>
    </div>
  )
}

export function WorkflowEdit({ id, onSaved }: { id?: string; onSaved: () => void }) {
  const [wf, setWf] = useState<Workflow | null>(null)
  const [connections, setConnections] = useState<Connection[]>([])
  const [busy, setBusy] = useState(false)
  const preset = new URLSearchParams(location.hash.split('?')[1] ?? '')
  useEffect(() => {
    api<Page<Connection>>('GET', '/v1/connections?limit=200').then((p) => setConnections(p.items), () => {})
    if (id) api<Workflow>('GET', `/v1/workflows/${enc(id)}`).then(setWf, (err) => showToast(errorText(err)))
  }, [id])
  if (id && !wf) return <div class="muted">loading…</div>
  const pp = wf?.poll_policy ?? {}
  const save = async (form: HTMLFormElement) => {
    const v = valuesOf(form)
    const num = (n: string) => (v(n) ? Number(v(n)) : undefined)
    const poll_policy = { first_interval_ms: num('first'), max_interval_ms: num('max'), deadline_ms: num('deadline'), max_transient_errors: num('errors'), adaptive: v('adaptive') === 'true' }
    const body: Record<string, unknown> = {
      name: v('name'), connection_id: v('connection'), upstream_workflow_id: v('upstream'), tags: v('tags').split(',').map((s) => s.trim()).filter(Boolean),
      poll_policy, config: json('Config', v('config'), {}), trigger_retry: v('retry'),
    }
    const template = json('Input template', v('template'), undefined)
    if (template !== undefined || wf) body.input_template = template ?? null
    // Sent only when given (or to clear one), so servers without typed inputs accept the rest.
    const schema = json('Variables schema', v('schema'), undefined)
    if (schema !== undefined || wf?.variables_schema) body.variables_schema = schema ?? null
    const saved = wf ? await api<Workflow>('PATCH', `/v1/workflows/${enc(wf.id)}`, body) : await api<Workflow>('POST', '/v1/workflows', body)
    showToast(`Saved ${saved.name}`)
    onSaved()
    go(`#/workflows/${enc(saved.id)}/edit`)
    if (wf) setWf(saved)
  }
  return (
    <div>
      <div class="small crumbs"><a href="#/workflows">← Workflows</a>{wf && <span> · <a href={`#/workflows/${enc(wf.id)}`}>health</a> · <a href={`#/runs?workflow=${enc(wf.id)}`}>runs</a></span>}</div>
      <form class="card pad form" id="wf-form" onSubmit={(e: Event) => {
        e.preventDefault(); setBusy(true)
        save(e.target as HTMLFormElement).catch((err) => showToast(errorText(err, 'change workflows', 'workflows:write'))).finally(() => setBusy(false))
      }}>
        <h1>{wf ? wf.name : 'New workflow'}</h1>
        <label>Name<input name="name" id="w-name" required value={wf?.name ?? preset.get('name') ?? ''} /></label>
        <label>Connection<select name="connection" id="w-conn" required>{connections.map((c) => <option value={c.id} selected={c.id === (wf?.connection_id ?? preset.get('connection'))}>{c.name} ({c.provider})</option>)}</select></label>
        <label>Upstream workflow id<input name="upstream" id="w-upstream" required value={wf?.upstream_workflow_id ?? preset.get('upstream') ?? ''} /></label>
        <label>Tags (comma separated)<input name="tags" id="w-tags" value={(wf?.tags ?? []).join(', ')} /></label>
        <label>Input template (JSON; <code>{'{{name}}'}</code> takes a run variable)<textarea name="template" id="w-template">{pretty(wf?.input_template)}</textarea></label>
        <label>Variables schema (JSON Schema; builds the trigger form and checks triggers)<textarea name="schema" id="w-schema">{pretty(wf?.variables_schema)}</textarea></label>
        <fieldset class="grid2"><legend>Poll policy</legend>
          <label>First interval (ms)<input name="first" id="w-first" type="number" min="100" value={pp.first_interval_ms ?? ''} /></label>
          <label>Max interval (ms)<input name="max" id="w-max" type="number" min="100" value={pp.max_interval_ms ?? ''} /></label>
          <label>Deadline (ms)<input name="deadline" id="w-deadline" type="number" min="1000" value={pp.deadline_ms ?? ''} /></label>
          <label>Transient errors allowed<input name="errors" id="w-errors" type="number" min="0" value={pp.max_transient_errors ?? ''} /></label>
          <label class="check"><input name="adaptive" id="w-adaptive" type="checkbox" checked={pp.adaptive !== false} />Adaptive (plan from past durations)</label>
        </fieldset>
        <label>Config (JSON)<textarea name="config" id="w-config">{pretty(wf?.config ?? {})}</textarea></label>
        <label>When a trigger's outcome is unknown<select name="retry" id="w-retry">{['at_most_once', 'at_least_once'].map((r) => <option value={r} selected={r === (wf?.trigger_retry ?? 'at_most_once')}>{r.replaceAll('_', ' ')}</option>)}</select></label>
        <div class="row">
          {wf && <button type="button" class="danger" id="w-delete" onClick={() => {
            if (confirm(`Delete ${wf.name}?`)) api('DELETE', `/v1/workflows/${enc(wf.id)}`).then(() => { onSaved(); go('#/workflows') }, (err) => showToast(errorText(err)))
          }}>Delete</button>}
          <span class="spacer" /><button class="primary" id="w-save" type="submit" disabled={busy}>{wf ? 'Save' : 'Create'}</button>
        </div>
      </form>
    </div>
  )
}
