/** @jsxImportSource hono/jsx/dom */
import { useEffect, useState } from 'hono/jsx/dom'
import { api, TERMINAL, type Run, type RunEvent, type Workflow } from './api.ts'
import { Chip, JsonView, Waterfall } from './components.tsx'
import { duration, runDuration } from './format.ts'
import { watchRunEvents, type LiveState } from './live.ts'
import { errorText, go, showToast } from './ui.tsx'

// ---- one run ----

export function RunView({ id, workflows, setLive, canWrite }: { id: string; workflows: Workflow[]; setLive: (s: LiveState | null) => void; canWrite: boolean }) {
  const [run, setRun] = useState<Run | null>(null)
  const [events, setEvents] = useState<RunEvent[]>([])
  const [missing, setMissing] = useState('')
  const [now, setNow] = useState(Date.now())
  const [self] = useState(() => ({})) // this view, for live.ts (an effect run twice keeps one socket)
  useEffect(() => {
    let stop = () => {}
    let alive = true
    let refresh: ReturnType<typeof setTimeout> | undefined
    const load = () => api<Run>('GET', `/v1/runs/${encodeURIComponent(id)}`).then((r) => { if (alive) setRun(r) })
    load().then(() => {
      if (!alive) return // left before the run loaded: no socket for a page that is gone
      stop = watchRunEvents(id, self, {
        onState: setLive,
        onEvent: (e) => {
          setEvents((xs) => [...xs, e])
          setRun((r) => (r ? { ...r, status: e.status } : r))
          // A refresh that fails (signed out meanwhile, a network blip) is dropped: the next event brings another.
          clearTimeout(refresh); refresh = setTimeout(() => { load().catch(() => {}) }, 150)
        },
      })
    }, (err) => setMissing(errorText(err)))
    const t = setInterval(() => setNow(Date.now()), 1000)
    // No state of the page is set here: an update of the parent while this view unmounts makes
    // hono/jsx/dom run the next view's effect twice (two sockets, each event shown twice).
    return () => { alive = false; stop(); clearInterval(t); clearTimeout(refresh) }
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
