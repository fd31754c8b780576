/** Where the CLI writes: stdout for results, stderr for progress and errors. */
export interface Io {
  out: (line: string) => void
  err: (line: string) => void
  /** Rewrite the current terminal line (spinner); only when stderr is a TTY. */
  status?: (line: string) => void
  /** stdout is a terminal: tables are aligned and cut to its width; otherwise tab-separated. */
  tty?: boolean
  columns?: number
  /** stdin's text (for `-f -`, `--credentials -`, `login` off a terminal). */
  readStdin?: () => Promise<string>
  /** Ask on the terminal; `secret` hides what is typed. Absent off a terminal. */
  prompt?: (question: string, secret?: boolean) => Promise<string>
}

export type Column<T> = [header: string, cell: (row: T) => unknown]

const text = (v: unknown): string => v === null || v === undefined ? '' : Array.isArray(v) ? v.join(',') : typeof v === 'object' ? JSON.stringify(v) : String(v)

/**
 * A list: on a terminal aligned columns (cut to its width) like `gh`; off one, tab-separated
 * values under a header line, which `cut -f`, `awk -F'\t'` and `column -t` read without guessing.
 * Hand-made instead of cli-table3: boxes drawn with borders do not survive `grep`/`cut`, and this
 * is 15 lines with nothing to load at start-up.
 */
export function table<T>(io: Io, rows: T[], cols: Array<Column<T>>): void {
  const cells = [cols.map(([h]) => h.toUpperCase()), ...rows.map((r) => cols.map(([, f]) => text(f(r)).replace(/[\t\n\r]+/g, ' ')))]
  if (!io.tty) {
    for (const row of cells) io.out(row.join('\t'))
    return
  }
  const widths = cols.map((_, i) => Math.max(...cells.map((row) => row[i]!.length)))
  // Past the terminal's width the widest column gives way (never below 12 characters).
  const budget = (io.columns ?? 120) - 2 * (cols.length - 1)
  while (widths.reduce((a, b) => a + b, 0) > budget) {
    const i = widths.indexOf(Math.max(...widths))
    if (widths[i]! <= 12) break
    widths[i] = widths[i]! - 1
  }
  const fit = (c: string, w: number) => (c.length > w ? `${c.slice(0, Math.max(0, w - 1))}…` : c.padEnd(w))
  for (const row of cells) io.out(row.map((c, i) => (i === row.length - 1 ? fit(c, widths[i]!).trimEnd() : fit(c, widths[i]!))).join('  ').trimEnd())
  if (rows.length === 0) io.out('(none)')
}

/** One object as `field  value` lines (nested values as compact JSON). */
export function show(io: Io, obj: Record<string, unknown>, fields?: string[]): void {
  const keys = fields ?? Object.keys(obj)
  const width = Math.max(...keys.map((k) => k.length))
  for (const k of keys) if (obj[k] !== undefined) io.out(`${k.padEnd(width)}  ${text(obj[k])}`)
}

/** `--json`: one JSON value per line (JSON Lines), nothing else on stdout. */
export function jsonLines(io: Io, values: unknown[]): void {
  for (const v of values) io.out(JSON.stringify(v))
}

/** A duration in ms as `850ms`, `4.2s` or `3m12s`. */
export function fmtDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return ''
  if (ms < 1000) return `${ms}ms`
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`
  return `${Math.floor(ms / 60_000)}m${Math.round((ms % 60_000) / 1000)}s`
}
