/** @jsxImportSource hono/jsx/dom */
import { useState } from 'hono/jsx/dom'
import type { Run, RunEvent } from './api.ts'
import { TERMINAL } from './api.ts'
import { duration, label } from './format.ts'

export const Chip = ({ status }: { status: string }) => <span class={`chip ${status}`} data-status={status}>{label(status)}</span>

/** Copy text, with a fallback where the Clipboard API is not available. */
async function copy(text: string): Promise<boolean> {
  try { await navigator.clipboard.writeText(text); return true } catch { /* not a secure context, or denied */ }
  const area = document.createElement('textarea')
  area.value = text
  document.body.appendChild(area)
  area.select()
  const ok = document.execCommand('copy')
  area.remove()
  return ok
}

/** A collapsible, copyable JSON view. */
export function JsonView({ title, value, open = true, id }: { title: string; value: unknown; open?: boolean; id?: string }) {
  const [copied, setCopied] = useState(false)
  const text = JSON.stringify(value, null, 2) ?? 'null'
  return (
    <details class="json" open={open} id={id}>
      <summary>
        <span>{title}</span>
        <span class="small muted">{text.length > 1024 ? `${(text.length / 1024).toFixed(1)} KiB` : ''}</span>
        <button type="button" class="link copy" onClick={(e: Event) => { e.preventDefault(); copy(text).then((ok) => { setCopied(ok); setTimeout(() => setCopied(false), 1500) }) }}>{copied ? 'Copied' : 'Copy'}</button>
      </summary>
      <pre>{text}</pre>
    </details>
  )
}

export interface Phase { status: string; start: number; end: number }
export interface Mark { at: number; kind: 'output' | 'progress' | 'error' | 'command'; label: string }

/** The phases of a run (queued, running, paused, …) and its step marks, from its events. */
export function phasesOf(run: Run, events: RunEvent[], now: number): { phases: Phase[]; marks: Mark[]; start: number; end: number } {
  const start = Date.parse(run.created_at)
  const phases: Phase[] = []
  const marks: Mark[] = []
  let current = { status: events.find((e) => e.type === 'run.created')?.status ?? 'queued', start }
  for (const e of events) {
    const at = Date.parse(e.at)
    if (e.type === 'run.status_changed' && e.status !== current.status) {
      phases.push({ ...current, end: at })
      current = { status: e.status, start: at }
    } else if (e.type === 'run.output') marks.push({ at, kind: 'output', label: String(e.data.key ?? 'output') })
    else if (e.type === 'run.progress') marks.push({ at, kind: 'progress', label: typeof e.data.message === 'string' ? e.data.message : `${Math.round(Number(e.data.progress ?? 0) * 100)}%` })
    else if (e.type === 'run.error') marks.push({ at, kind: 'error', label: String((e.data.error as { code?: string } | undefined)?.code ?? 'error') })
    else if (e.type === 'run.command') marks.push({ at, kind: 'command', label: String(e.data.command ?? 'command') })
  }
  const end = TERMINAL.has(current.status) ? current.start : Math.max(now, current.start)
  if (!TERMINAL.has(current.status)) phases.push({ ...current, end })
  return { phases, marks, start, end: Math.max(end, start + 1) }
}

/** A waterfall of where a run's time went: one bar per phase, marks for outputs, progress and errors. */
export function Waterfall({ run, events, now }: { run: Run; events: RunEvent[]; now: number }) {
  const { phases, marks, start, end } = phasesOf(run, events, now)
  const span = end - start
  const x = (t: number) => (100 * (t - start)) / span
  const rowH = 26
  const height = (phases.length + 1) * rowH + 8
  return (
    <div class="waterfall" id="waterfall">
      <svg viewBox={`0 0 100 ${height}`} preserveAspectRatio="none" role="img" aria-label="run phases">
        {phases.map((p, i) => <rect class={`ph ${p.status}`} x={x(p.start)} y={i * rowH + 6} width={Math.max(0.4, x(p.end) - x(p.start))} height={rowH - 10} rx="1" />)}
        {marks.map((m) => <line class={`mk ${m.kind}`} x1={x(m.at)} x2={x(m.at)} y1={phases.length * rowH + 2} y2={height - 2} />)}
      </svg>
      <ol class="phase-list">
        {phases.map((p) => <li><Chip status={p.status} /> <span class="mono small">{duration(p.end - p.start) || '0.0s'}</span> <span class="small muted">from +{duration(p.start - start) || '0.0s'}</span></li>)}
      </ol>
      {marks.length > 0 && <div class="small muted marks">{marks.length} step{marks.length === 1 ? '' : 's'}: {marks.slice(0, 12).map((m) => <span class={`mark ${m.kind}`}>+{duration(m.at - start) || '0.0s'} {m.label}</span>)}{marks.length > 12 ? ' …' : ''}</div>}
    </div>
  )
}

export interface Bucket { start: string; total: number; completed: number; failed: number; canceled: number; timed_out: number; upstream_errors: number }

/** Runs per bucket, stacked by outcome (still-running runs on top), drawn as SVG. */
export function StatusBars({ timeline, id }: { timeline: Bucket[]; id: string }) {
  const max = Math.max(1, ...timeline.map((b) => b.total))
  const w = 100 / Math.max(1, timeline.length)
  const parts = ['completed', 'failed', 'timed_out', 'canceled'] as const
  return (
    <svg class="chart" id={id} viewBox="0 0 100 40" preserveAspectRatio="none" role="img" aria-label="runs by status">
      {timeline.map((b, i) => {
        let y = 40
        const rects = parts.map((k) => { const h = (40 * b[k]) / max; y -= h; return <rect class={`bar-${k}`} x={i * w + w * 0.1} y={y} width={w * 0.8} height={h}><title>{`${b.start}: ${b[k]} ${label(k)}`}</title></rect> })
        const other = b.total - parts.reduce((a, k) => a + b[k], 0)
        const h = (40 * other) / max
        return [...rects, <rect class="bar-running" x={i * w + w * 0.1} y={y - h} width={w * 0.8} height={h} />]
      })}
    </svg>
  )
}

/** One value per bucket as bars (upstream errors, success rate). */
export function ValueBars({ values, max, id, cls, titles }: { values: Array<number | null>; max: number; id: string; cls: string; titles: string[] }) {
  const w = 100 / Math.max(1, values.length)
  return (
    <svg class="chart small-chart" id={id} viewBox="0 0 100 20" preserveAspectRatio="none" role="img">
      {values.map((v, i) => v === null ? null : <rect class={cls} x={i * w + w * 0.1} y={20 - (20 * v) / Math.max(max, 1e-9)} width={w * 0.8} height={(20 * v) / Math.max(max, 1e-9)}><title>{titles[i]}</title></rect>)}
    </svg>
  )
}
