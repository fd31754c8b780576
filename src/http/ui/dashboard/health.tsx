/** @jsxImportSource hono/jsx/dom */
import { useEffect, useState } from 'hono/jsx/dom'
import { api, type Workflow } from './api.ts'
import { StatusBars, ValueBars, type Bucket } from './components.tsx'
import { duration, label } from './format.ts'
import { errorText, go } from './ui.tsx'

// ---- a workflow's health ----

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

export function WorkflowHealth({ id, params, workflows }: { id: string; params: URLSearchParams; workflows: Workflow[] }) {
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
