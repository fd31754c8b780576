// Figures (timings, sizes, counts) that some tests can report. They are not assertions and do not
// print in a normal run; `npm run bench -- figures` runs the lanes with RUNRELAY_FIGURES=1 and
// prints them. (Inside workerd, where the Workers lane runs, there is no such variable: those
// figures are `npm run bench -- workers-fanout`'s.)

/** True when figures were asked for (RUNRELAY_FIGURES=1, set by `npm run bench -- figures`). */
export const FIGURES = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.RUNRELAY_FIGURES === '1'

/** Print one line of figures under `label`, only when figures were asked for. */
export function logFigures(label: string, figures: unknown): void {
  if (FIGURES) console.log(`[figures] ${label}: ${typeof figures === 'string' ? figures : JSON.stringify(figures)}`)
}
