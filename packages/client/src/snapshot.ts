import { endsRun, isTerminal, type RunEvent, type RunStatus } from './protocol.ts'

/**
 * What a run's outputs and result look like, declared by the user per workflow:
 * `useRun<{ outputs: { summary: string }; result: { url: string } }>(id)`.
 */
export interface RunTypes {
  outputs?: Record<string, unknown>
  result?: unknown
}
type OutputsOf<T extends RunTypes> = T['outputs'] extends Record<string, unknown> ? T['outputs'] : Record<string, unknown>
type ResultOf<T extends RunTypes> = 'result' extends keyof T ? T['result'] : unknown

/** The error a run ended with (or the last transient one, with `transient: true`). */
export interface RunError { code: string; message: string; status?: number; transient?: boolean }

/** A run as its events tell it: the fold of every event so far, next to the raw events. */
export interface RunSnapshot<T extends RunTypes = RunTypes> {
  id: string
  workflowId: string | undefined
  /** Undefined until the first event arrives. */
  status: RunStatus | undefined
  /** 0..1 as the upstream reports it. */
  progress: number | undefined
  message: string | undefined
  /** Outputs by key, as `run.output` events bring them. */
  outputs: Partial<OutputsOf<T>>
  result: ResultOf<T> | undefined
  error: RunError | undefined
  tags: string[]
  createdAt: string | undefined
  /** The first `running` event's time. Events do not carry the trigger's answer, so this can be later than the server's `started_at` (the upstream's acceptance). */
  startedAt: string | undefined
  finishedAt: string | undefined
  /** From `startedAt` (or creation) to the end, once finished: the running time, where the server's `duration_ms` also counts the upstream queue. */
  durationMs: number | undefined
  /** Whether the run reached a terminal status. */
  finished: boolean
  /** The last seq folded in (0: none). */
  lastSeq: number
  /** Every event folded in, in seq order. */
  events: RunEvent[]
}

/** The snapshot of a run before any event. */
export function emptyRun<T extends RunTypes = RunTypes>(id: string): RunSnapshot<T> {
  return {
    id, workflowId: undefined, status: undefined, progress: undefined, message: undefined, outputs: {}, result: undefined, error: undefined,
    tags: [], createdAt: undefined, startedAt: undefined, finishedAt: undefined, durationMs: undefined, finished: false, lastSeq: 0, events: [],
  }
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined)
const asError = (v: unknown): RunError | undefined =>
  v && typeof v === 'object' && typeof (v as RunError).code === 'string' ? { ...(v as RunError), message: String((v as RunError).message ?? '') } : undefined

/**
 * Fold one event into a snapshot, returning a new snapshot (the old one is not changed, so
 * frameworks see a new reference). Events at or before `lastSeq` are ignored.
 */
export function foldRun<T extends RunTypes>(run: RunSnapshot<T>, e: RunEvent, keepEvents = true): RunSnapshot<T> {
  if (e.seq <= run.lastSeq) return run
  const next: RunSnapshot<T> = { ...run, workflowId: e.workflow_id, status: e.status, tags: e.tags, lastSeq: e.seq, events: keepEvents ? [...run.events, e] : run.events }
  const d = e.data
  switch (e.type) {
    case 'run.created': next.createdAt = e.at; break
    case 'run.progress':
      if (typeof d.progress === 'number') next.progress = d.progress
      if (str(d.message) !== undefined) next.message = str(d.message)
      break
    case 'run.output':
      if (typeof d.key === 'string') next.outputs = { ...run.outputs, [d.key]: d.output }
      break
    case 'run.error':
      next.error = { ...(asError(d.error) ?? { code: 'upstream_error', message: '' }), transient: true }
      break
    case 'run.status_changed':
      if (e.status === 'running' && !run.startedAt) next.startedAt = e.at
      if ('result' in d) next.result = d.result as ResultOf<T>
      if (isTerminal(e.status)) {
        next.error = e.status === 'completed' ? undefined : asError(d.error) ?? { code: `run_${e.status}`, message: e.status }
        if (e.status === 'completed' && next.progress !== undefined) next.progress = 1
      }
      break
    default: break
  }
  if (endsRun(e)) {
    next.finished = true
    next.finishedAt = e.at
    const from = next.startedAt ?? next.createdAt
    if (from) next.durationMs = Date.parse(e.at) - Date.parse(from)
  }
  return next
}
