/** @jsxImportSource hono/jsx/dom */
// Keys (create, shown once, revoke), schedules (one-off or cron; pause, resume, delete) and
// webhooks (endpoints, their secret shown once, the delivery log and redelivery).
import { useEffect, useState } from 'hono/jsx/dom'
import { api, session, type Page, type Workflow } from './api.ts'
import { ago } from './format.ts'
import { errorText, go, showToast } from './ui.tsx'

const enc = encodeURIComponent
const SCOPES = ['workflows:read', 'workflows:write', 'runs:read', 'runs:write', 'admin']
const field = (form: HTMLFormElement, n: string) => ((form.elements.namedItem(n) as HTMLInputElement | null)?.value ?? '').trim()

function useList<T>(path: string, scope: string): [T[] | null, () => void, string] {
  const [items, setItems] = useState<T[] | null>(null)
  const [error, setError] = useState('')
  const load = () => api<Page<T>>('GET', path).then((p) => setItems(p.items), (err) => { setItems([]); setError(errorText(err, 'see this', scope)) })
  useEffect(() => { void load() }, [path])
  return [items, load, error]
}

/** A secret shown once, with the reason it cannot be shown again. */
function Once({ id, label, value, onDone }: { id: string; label: string; value: string; onDone: () => void }) {
  return (
    <div class="card pad once" id={id}>
      <b>{label}</b> <span class="small muted">shown once: copy it now; runrelay keeps only a hash (keys) or needs it to sign (webhooks) and will not show it again.</span>
      <pre class="mono secret">{value}</pre>
      <button type="button" onClick={onDone}>Done</button>
    </div>
  )
}

// ---- keys ----

interface Key { id: string; name: string; prefix: string; scopes: string[]; created_at: string; last_used_at: string | null; revoked_at: string | null; key?: string }

export function Keys() {
  const [items, load, error] = useList<Key>('/v1/keys?limit=200', 'admin')
  const [created, setCreated] = useState<Key | null>(null)
  return (
    <div>
      <div class="row head"><h1>API keys</h1></div>
      {error && <p class="bad small">{error}</p>}
      {created?.key && <Once id="key-once" label={`Key ${created.name}`} value={created.key} onDone={() => setCreated(null)} />}
      <form class="card pad form section" id="key-form" onSubmit={(e: Event) => {
        e.preventDefault()
        const form = e.target as HTMLFormElement
        const scopes = [...form.querySelectorAll<HTMLInputElement>('[data-scope]')].filter((x) => x.checked).map((x) => x.dataset.scope!)
        if (!scopes.length) return showToast('Pick at least one scope')
        api<Key>('POST', '/v1/keys', { name: field(form, 'name'), scopes }).then((k) => { setCreated(k); form.reset(); load() }, (err) => showToast(errorText(err, 'create keys', 'admin')))
      }}>
        <h2>New key</h2>
        <label>Name<input name="name" id="k-name" required placeholder="backend, ci…" /></label>
        <div class="toggles" id="k-scopes">{SCOPES.map((s) => <label class="check"><input type="checkbox" data-scope={s} checked={s.endsWith(':read')} />{s}</label>)}</div>
        <div class="row"><span class="spacer" /><button class="primary" id="k-create" type="submit">Create key</button></div>
      </form>
      <div class="card section"><table class="list"><thead><tr><th>Name</th><th>Prefix</th><th>Scopes</th><th>Last used</th><th /></tr></thead>
        <tbody id="keys-body">{(items ?? []).map((k) => (
          <tr data-id={k.id} class={k.revoked_at ? 'revoked' : ''}>
            <td>{k.name}</td><td class="mono small">{k.prefix}…</td><td>{k.scopes.map((s) => <span class="tag">{s}</span>)}</td>
            <td class="small muted">{k.revoked_at ? `revoked ${ago(k.revoked_at)}` : k.last_used_at ? ago(k.last_used_at) : 'never'}</td>
            <td class="actions">{!k.revoked_at && <button class="danger" data-revoke={k.id} onClick={() => {
              if (confirm(`Revoke ${k.name}? Anything using it stops working.`)) api('DELETE', `/v1/keys/${enc(k.id)}`).then(load, (err) => showToast(errorText(err, 'revoke keys', 'admin')))
            }}>Revoke</button>}</td>
          </tr>))}</tbody></table></div>
    </div>
  )
}

// ---- schedules ----

interface Schedule { id: string; workflow_id: string; name: string | null; kind: 'at' | 'cron'; cron: string | null; at: string | null; timezone: string; state: string; paused: boolean; next_fire_at: string | null; fires: number; last_error: string | null }

export function Schedules({ workflows }: { workflows: Workflow[] }) {
  const [items, load, error] = useList<Schedule>('/v1/schedules?limit=200', 'runs:read')
  const [kind, setKind] = useState<'cron' | 'at'>('cron')
  const canWrite = session.has('runs:write')
  const wfName = (id: string) => workflows.find((w) => w.id === id)?.name ?? id
  const act = (s: Schedule, what: 'pause' | 'resume' | 'delete') => (what === 'delete' ? api('DELETE', `/v1/schedules/${enc(s.id)}`) : api('POST', `/v1/schedules/${enc(s.id)}/${what}`)).then(load, (err) => showToast(errorText(err, `${what} schedules`)))
  return (
    <div>
      <div class="row head"><h1>Schedules</h1></div>
      {error && <p class="bad small">{error}</p>}
      {canWrite && workflows.length > 0 && (
        <form class="card pad form" id="sched-form" onSubmit={(e: Event) => {
          e.preventDefault()
          const form = e.target as HTMLFormElement
          let variables: unknown
          try { variables = JSON.parse(field(form, 'vars') || '{}') } catch { return showToast('Variables must be JSON') }
          const when = kind === 'cron' ? { cron: field(form, 'cron') } : { at: field(form, 'at') }
          api('POST', '/v1/schedules', { workflow_id: field(form, 'wf'), name: field(form, 'name') || undefined, timezone: field(form, 'tz') || 'UTC', variables, ...when })
            .then(() => { form.reset(); load() }, (err) => showToast(errorText(err, 'create schedules')))
        }}>
          <h2>New schedule</h2>
          <div class="grid2">
            <label>Workflow<select name="wf" id="s-wf">{workflows.map((w) => <option value={w.id}>{w.name}</option>)}</select></label>
            <label>Name<input name="name" id="s-name" placeholder="optional" /></label>
            <label>Kind<select id="s-kind" onChange={(e: Event) => setKind((e.target as HTMLSelectElement).value as 'cron' | 'at')}><option value="cron">cron (repeats)</option><option value="at">once, at a time</option></select></label>
            {kind === 'cron' ? <label>Cron<input name="cron" id="s-cron" required placeholder="0 9 * * 1-5" /></label> : <label>At (local time in the zone)<input name="at" id="s-at" type="datetime-local" required /></label>}
            <label>Time zone<input name="tz" id="s-tz" value="UTC" /></label>
          </div>
          <label>Variables (JSON)<textarea name="vars" id="s-vars">{'{}'}</textarea></label>
          <div class="row"><span class="spacer" /><button class="primary" id="s-create" type="submit">Create schedule</button></div>
        </form>
      )}
      <div class="card section"><table class="list"><thead><tr><th>Schedule</th><th>Workflow</th><th>When</th><th>Next</th><th>State</th><th /></tr></thead>
        <tbody id="schedules-body">{(items ?? []).map((s) => (
          <tr data-id={s.id}>
            <td>{s.name ?? <span class="mono small">{s.id}</span>}{s.last_error && <div class="small bad">{s.last_error}</div>}</td><td>{wfName(s.workflow_id)}</td>
            <td class="mono small">{s.kind === 'cron' ? s.cron : s.at} <span class="muted">{s.timezone}</span></td>
            <td class="small">{s.next_fire_at ? new Date(s.next_fire_at).toLocaleString() : '—'}</td><td><span class={`tag state-${s.state}`}>{s.state}</span> <span class="small muted">{s.fires} fired</span></td>
            <td class="actions">{canWrite && <span class="row">
              {s.state !== 'finished' && (s.paused ? <button data-act="resume" onClick={() => act(s, 'resume')}>Resume</button> : <button data-act="pause" onClick={() => act(s, 'pause')}>Pause</button>)}
              <button class="danger" data-act="delete" onClick={() => { if (confirm('Delete this schedule?')) void act(s, 'delete') }}>Delete</button></span>}</td>
          </tr>))}</tbody></table>
        {items?.length === 0 && !error && <div class="empty">No schedules.</div>}</div>
    </div>
  )
}

// ---- webhooks ----

interface Endpoint { id: string; url: string; workflow_id: string | null; events: string | string[]; description: string | null; enabled: boolean; disabled_reason: string | null; secret?: string }
interface Delivery { id: string; endpoint_id: string; run_id: string; event_type: string; status: string; attempts: number; last_status_code: number | null; last_error: string | null; created_at: string; next_attempt_at: string | null }

export function Webhooks({ params, workflows }: { params: URLSearchParams; workflows: Workflow[] }) {
  const [endpoints, loadEndpoints, error] = useList<Endpoint>('/v1/webhooks?limit=200', 'workflows:read')
  const endpoint = params.get('endpoint') ?? ''
  const [deliveries, loadDeliveries] = useList<Delivery>(`/v1/webhook-deliveries?limit=100${endpoint ? `&endpoint_id=${enc(endpoint)}` : ''}`, 'workflows:read')
  const [secret, setSecret] = useState<Endpoint | null>(null)
  const canWrite = session.has('workflows:write')
  return (
    <div>
      <div class="row head"><h1>Webhooks</h1></div>
      {error && <p class="bad small">{error}</p>}
      {secret?.secret && <Once id="wh-once" label={`Signing secret for ${secret.url}`} value={secret.secret} onDone={() => setSecret(null)} />}
      {canWrite && (
        <form class="card pad form" id="wh-form" onSubmit={(e: Event) => {
          e.preventDefault()
          const form = e.target as HTMLFormElement
          api<Endpoint>('POST', '/v1/webhooks', { url: field(form, 'url'), workflow_id: field(form, 'wf') || null, events: field(form, 'events'), description: field(form, 'desc') || undefined })
            .then((x) => { setSecret(x); form.reset(); loadEndpoints() }, (err) => showToast(errorText(err, 'create webhooks', 'workflows:write')))
        }}>
          <h2>New endpoint</h2>
          <div class="grid2">
            <label>URL<input name="url" id="wh-url" type="url" required placeholder="https://example.com/hooks/runrelay" /></label>
            <label>Workflow<select name="wf" id="wh-wf"><option value="">every workflow</option>{workflows.map((w) => <option value={w.id}>{w.name}</option>)}</select></label>
            <label>Events<select name="events" id="wh-events"><option value="terminal">a run ended</option><option value="status">every status change</option><option value="all">every event</option></select></label>
            <label>Description<input name="desc" id="wh-desc" /></label>
          </div>
          <div class="row"><span class="spacer" /><button class="primary" id="wh-create" type="submit">Add endpoint</button></div>
        </form>
      )}
      <div class="card section"><table class="list"><thead><tr><th>Endpoint</th><th>Events</th><th>State</th><th /></tr></thead>
        <tbody id="endpoints-body">{(endpoints ?? []).map((x) => (
          <tr data-id={x.id} class={x.id === endpoint ? 'on' : ''}>
            <td class="mono small wrap">{x.url}{x.description && <div class="muted">{x.description}</div>}</td><td class="small">{Array.isArray(x.events) ? x.events.join(', ') : x.events}</td>
            <td>{x.enabled ? <span class="tag">enabled</span> : <span class="tag bad">disabled{x.disabled_reason ? `: ${x.disabled_reason}` : ''}</span>}</td>
            <td class="actions"><span class="row">
              <button class="link" onClick={() => go(x.id === endpoint ? '#/webhooks' : `#/webhooks?endpoint=${enc(x.id)}`)}>{x.id === endpoint ? 'All deliveries' : 'Deliveries'}</button>
              {canWrite && <button class="danger" onClick={() => { if (confirm(`Delete ${x.url}?`)) api('DELETE', `/v1/webhooks/${enc(x.id)}`).then(loadEndpoints, (err) => showToast(errorText(err))) }}>Delete</button>}
            </span></td>
          </tr>))}</tbody></table>
        {endpoints?.length === 0 && !error && <div class="empty">No endpoints.</div>}</div>
      <div class="card section">
        <div class="row pad"><h2>Deliveries{endpoint ? ' to this endpoint' : ''}</h2><span class="spacer" /><button id="wh-refresh" onClick={loadDeliveries}>Refresh</button></div>
        <table class="list"><thead><tr><th>Delivery</th><th>Event</th><th>Status</th><th>Attempts</th><th /></tr></thead>
          <tbody id="deliveries-body">{(deliveries ?? []).map((d) => (
            <tr data-id={d.id} data-status={d.status}>
              <td class="mono small">{d.id}<div class="muted"><a href={`#/runs/${enc(d.run_id)}`}>{d.run_id}</a> · {ago(d.created_at)}</div></td><td class="small">{d.event_type}</td>
              <td><span class={`tag delivery-${d.status}`}>{d.status}</span>{d.last_status_code !== null && <span class="small muted"> HTTP {d.last_status_code}</span>}{d.last_error && <div class="small bad">{d.last_error}</div>}</td>
              <td>{d.attempts}</td>
              <td class="actions">{canWrite && <button data-redeliver={d.id} onClick={() => api('POST', `/v1/webhook-deliveries/${enc(d.id)}/redeliver`).then(() => { showToast('Redelivery queued'); loadDeliveries() }, (err) => showToast(errorText(err, 'redeliver', 'workflows:write')))}>Redeliver</button>}</td>
            </tr>))}</tbody></table>
        {deliveries?.length === 0 && <div class="empty">No deliveries.</div>}
      </div>
    </div>
  )
}
