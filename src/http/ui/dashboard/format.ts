/** 1.2 s, 3m 04s, 2h 5m. */
export function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || ms < 0) return ''
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)}s`
  let s = Math.round(ms / 1000)
  if (s < 60) return `${s}s`
  const m = Math.floor(s / 60); s %= 60
  if (m < 60) return `${m}m ${String(s).padStart(2, '0')}s`
  return `${Math.floor(m / 60)}h ${m % 60}m`
}

export function ago(iso: string | null | undefined): string {
  if (!iso) return ''
  const s = Math.round((Date.now() - Date.parse(iso)) / 1000)
  if (s < 5) return 'just now'
  if (s < 60) return `${s}s ago`
  if (s < 3600) return `${Math.floor(s / 60)}m ago`
  if (s < 86_400) return `${Math.floor(s / 3600)}h ago`
  return new Date(iso).toLocaleString()
}

/** A run's duration so far (running) or in total (finished). */
export function runDuration(r: { duration_ms: number | null; started_at: string | null; status: string }, terminal: Set<string>): number | null {
  if (r.duration_ms !== null) return r.duration_ms
  if (r.started_at && !terminal.has(r.status)) return Date.now() - Date.parse(r.started_at)
  return null
}

export const label = (status: string) => status.replace('_', ' ')
