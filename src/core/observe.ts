import { derivedSecrets, secretValues, type Observation } from './connector.ts'
import { isTerminal, STATUS_RANK, type NewEvent } from './domain.ts'
import type { ConnectorBinding } from './ports.ts'
import { secretForms } from './redact.ts'
import { shownObservation } from './redact-upstream.ts'
import type { RunPatch, RunRecord } from './run.ts'

/** A run's change: its patch and the events it implies. */
export interface Change { patch: RunPatch; events: NewEvent[] }

/**
 * Secret forms of each connection's credentials and derived secrets (the decrypted object is
 * cached per connection version; the forms are made again when a secret is derived).
 */
const formsCache = new WeakMap<object, { derived: string; forms: string[] }>()

/** The texts under which a binding's connection secrets (credentials and derived ones) must never be stored or shown. */
export function formsOf(binding: ConnectorBinding | undefined): string[] {
  const ctx = binding?.ctx
  const creds = ctx?.connection?.credentials
  if (!ctx || !creds || typeof creds !== 'object') return []
  const derived = derivedSecrets(ctx).join('\n')
  let hit = formsCache.get(creds)
  if (!hit || hit.derived !== derived) formsCache.set(creds, (hit = { derived, forms: secretForms(secretValues(ctx)) }))
  return hit.forms
}

/**
 * Turn an observation into a patch and the events it implies (nothing if nothing changed), at
 * `now`. `forms` are the connection's secret forms, which must not be stored or shown should the
 * upstream echo them back (its own state is kept as it came).
 */
export function observeChange(run: RunRecord, seen: Observation, forms: string[], now: number): Change {
  // Compared with the stored run as it will be stored: through the upstream boundary (every field but the connector's state).
  const obs: Observation = shownObservation(seen, forms)
  const patch: RunPatch = {}
  const events: NewEvent[] = []
  if (obs.raw !== undefined) patch.lastRaw = obs.raw
  if (obs.state) patch.connectorState = { ...run.connectorState, ...obs.state }
  if (obs.upstreamStatus !== undefined && obs.upstreamStatus !== run.upstreamStatus) patch.upstreamStatus = obs.upstreamStatus

  const progress = obs.progress === undefined ? undefined : Math.min(1, Math.max(0, obs.progress))
  const progressChanged = progress !== undefined && progress !== run.progress
  const messageChanged = obs.message !== undefined && obs.message !== run.message
  if (progressChanged) patch.progress = progress
  if (messageChanged) patch.message = obs.message
  if (progressChanged || messageChanged) events.push({ type: 'run.progress', data: { progress: progress ?? run.progress, message: obs.message ?? run.message } })

  if (obs.outputs?.length) {
    const seen = new Set(run.outputKeys)
    const fresh = obs.outputs.filter((o) => !seen.has(o.key))
    for (const o of fresh) events.push({ type: 'run.output', data: { key: o.key, output: o.data } })
    if (fresh.length) patch.outputKeys = [...run.outputKeys, ...fresh.map((o) => o.key)]
  }

  const from = run.status
  const to = obs.status
  // Statuses that go backwards (running → queued) are kept as the upstream status only.
  if (to && to !== from && STATUS_RANK[to] >= STATUS_RANK[from]) {
    patch.status = to
    const data: Record<string, unknown> = { from, to, upstream_status: obs.upstreamStatus ?? null }
    if (to === 'running' && !run.startedAt) patch.startedAt = now
    if (isTerminal(to)) {
      patch.finishedAt = now
      patch.nextTickAt = null
      if (obs.result !== undefined) { patch.result = obs.result; data.result = obs.result }
      if (to !== 'completed') {
        const error = obs.error ?? { code: `upstream_${to}`, message: `upstream reported ${obs.upstreamStatus ?? to}` }
        patch.error = error
        data.error = error
      }
    }
    events.push({ type: 'run.status_changed', data })
  }
  return { patch, events }
}
