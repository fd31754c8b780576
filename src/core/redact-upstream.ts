/**
 * The one boundary of what comes from an upstream. Everything the watcher stores or publishes
 * about a run (its patch: status words, message, result, raw answer, error; its events: outputs,
 * errors, evidence, command notes) passes through `shownPatch` / `shownEvents` in one place (the
 * watcher's commit), so no field is left out: a field an upstream fills tomorrow is covered too.
 * Webhooks and the API serve what was stored; the logs get the same text.
 *
 *  - the connection's secret values are replaced in every string and key, in every form an
 *    upstream may echo them (see secretForms: bare, `Bearer …`, URL-encoded, JSON-escaped,
 *    base64, Basic `user:pass`);
 *  - error texts also lose URL credentials (userinfo, credential-named query values), as they
 *    quote URLs runrelay requested; customer data (result, outputs) keeps its signed links;
 *  - what is kept for debugging is bounded: the raw answer and an error's upstream body to
 *    MAX_KEPT_RAW_BYTES of JSON, messages to MAX_KEPT_TEXT_CHARS, each with a truncation marker.
 *    Results and outputs are the run's data: they are bounded by the answer limit
 *    (RUNRELAY_MAX_UPSTREAM_BODY_BYTES), not truncated.
 */
import type { Observation } from './connector.ts'
import type { ErrorInfo, NewEvent } from './domain.ts'
import { redactDeep, redactSecrets } from './redact.ts'
import type { RunPatch } from './run.ts'

/** JSON bytes of a raw answer or an upstream error body kept with a run. */
export const MAX_KEPT_RAW_BYTES = 64 * 1024
/** Characters of a message or an error message kept with a run. */
export const MAX_KEPT_TEXT_CHARS = 8 * 1024

/** A text cut to `max` characters, with a marker saying how much was dropped. */
export function boundText(text: string, max = MAX_KEPT_TEXT_CHARS): string {
  return text.length <= max ? text : `${text.slice(0, max)}… [truncated by runrelay: ${text.length - max} more characters]`
}

/**
 * A JSON value whose text fits `max` bytes, else a marker object holding the start of its
 * text: `{"runrelay_truncated": true, "bytes": <full size>, "head": "<first bytes of the JSON text>"}`.
 */
export function boundJson(value: unknown, max = MAX_KEPT_RAW_BYTES): unknown {
  if (value === undefined || value === null || typeof value === 'number' || typeof value === 'boolean') return value
  if (typeof value === 'string') return value.length * 3 <= max ? value : boundAsText(value, JSON.stringify(value), max)
  // Already bounded (an observation is bounded, then the patch made of it): keep the first marker's sizes.
  if ((value as { runrelay_truncated?: unknown }).runrelay_truncated === true) return value
  let text: string
  try { text = JSON.stringify(value) } catch { return { runrelay_truncated: true, bytes: null, head: '' } }
  if (text === undefined || text.length * 3 <= max) return value // fast: fits even if every char took 3 bytes
  return boundAsText(value, text, max)
}

function boundAsText(value: unknown, text: string, max: number): unknown {
  const bytes = new TextEncoder().encode(text)
  if (bytes.byteLength <= max) return value
  // Cut on a character boundary (a partial UTF-8 sequence is dropped by the decoder's `fatal: false` as U+FFFD: trim it).
  const head = new TextDecoder().decode(bytes.subarray(0, max)).replace(/\uFFFD$/, '')
  return { runrelay_truncated: true, bytes: bytes.byteLength, head }
}

/** An error as it may be kept: secrets and URL credentials out, message and upstream body bounded. */
export function shownError(error: ErrorInfo, forms: readonly string[]): ErrorInfo {
  const e = redactDeep(redactSecrets(error, forms))
  const out: ErrorInfo = { ...e, message: boundText(String(e.message ?? '')) }
  if (e.body !== undefined) out.body = boundJson(e.body)
  return out
}

/**
 * An observation as the watcher may compare, store and publish it: every field except the
 * connector's own `state` (never served; the connector needs it as it came) redacted, and
 * bounded as above.
 */
export function shownObservation(obs: Observation, forms: readonly string[]): Observation {
  const { state, ...rest } = obs
  const out: Observation = redactSecrets(rest, forms)
  if (out.raw !== undefined) out.raw = boundJson(out.raw)
  if (typeof out.message === 'string') out.message = boundText(out.message)
  if (typeof out.upstreamStatus === 'string') out.upstreamStatus = boundText(out.upstreamStatus, 200)
  if (out.error) out.error = shownError(out.error, forms)
  if (state !== undefined) out.state = state
  return out
}

/** A run patch as it may be stored: every field but the connector's state through the boundary. */
export function shownPatch(patch: RunPatch, forms: readonly string[]): RunPatch {
  const { connectorState, ...rest } = patch
  const out: RunPatch = redactSecrets(rest, forms)
  if (out.lastRaw !== undefined && out.lastRaw !== null) out.lastRaw = boundJson(out.lastRaw)
  if (typeof out.message === 'string') out.message = boundText(out.message)
  if (out.error) out.error = shownError(out.error as ErrorInfo, forms)
  if (connectorState !== undefined) out.connectorState = connectorState
  return out
}

/** Events as they may be stored and published: redacted, and an `error` in their data shown as above. */
export function shownEvents(events: NewEvent[], forms: readonly string[]): NewEvent[] {
  return events.map((e) => {
    const data = redactSecrets(e.data, forms)
    const error = (data as Record<string, unknown>).error
    if (error && typeof error === 'object') return { ...e, data: { ...data, error: shownError(error as ErrorInfo, forms) } }
    return data === e.data ? e : { ...e, data }
  })
}
