/**
 * Credential redaction for everything runrelay writes down or shows: run errors, events, log
 * lines, the webhook delivery log. Portable core code (no runtime imports).
 *
 * Two kinds of secret are removed:
 *  - values runrelay knows are secret (a connection's decrypted credentials), wherever they
 *    appear, raw or URL-encoded;
 *  - anything that looks like a credential in a URL: userinfo (`user:pass@`) and the values of
 *    query parameters named like credentials (`api_key`, `token`, `secret`, `sig`, …).
 */

export const REDACTED = 'REDACTED'

/** Query parameter and header names that carry credentials (case-insensitive). */
const CREDENTIAL_NAME = /(^|[-_.])(key|sig|signature|auth|authorization|pass|pwd)([-_.]|$)|token|secret|passw|api[-_]?key|apikey|credential|session|jwt|bearer|private/i

/** Whether a query parameter or header name looks like it carries a credential. */
export function isCredentialName(name: string): boolean {
  return CREDENTIAL_NAME.test(name)
}

// `[?&;]name=value` pairs (in a URL or in prose about one); the value runs to the next separator.
const QUERY_PAIR = /([?&;])([^=&#?\s"'<>()]+)=([^&#;\s"'<>()]*)/g
// `scheme://userinfo@`: userinfo is dropped, as the outbound guard shows refused URLs.
const USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#@"'<>]*@/gi

/** Secret values worth searching for: long enough not to match ordinary words. */
function usable(secrets: Iterable<string> | undefined): string[] {
  const out = new Set<string>()
  for (const s of secrets ?? []) {
    if (typeof s !== 'string' || s.length < 4) continue
    out.add(s)
    const encoded = encodeURIComponent(s)
    if (encoded !== s) out.add(encoded)
  }
  // Longest first, so a secret that contains another is replaced whole.
  return [...out].sort((a, b) => b.length - a.length)
}

/** A text with known secret values, URL userinfo and credential-named query values replaced. */
export function redactText(text: string, secrets?: Iterable<string>): string {
  let out = text
  for (const s of usable(secrets)) if (out.includes(s)) out = out.split(s).join(REDACTED)
  if (out.includes('@')) out = out.replace(USERINFO, '$1')
  if (out.includes('=')) out = out.replace(QUERY_PAIR, (m, sep: string, name: string) => (isCredentialName(safeDecode(name)) ? `${sep}${name}=${REDACTED}` : m))
  return out
}

/** A URL fit to show: without userinfo and with credential-named query values replaced. */
export function redactUrl(url: string | URL): string {
  return redactText(typeof url === 'string' ? url : url.href)
}

/** Every string inside a JSON-like value passed through `fn` (objects and arrays copied, 64 levels deep). */
function mapStrings<T>(value: T, fn: (s: string) => string): T {
  const walk = (v: unknown, depth: number): unknown => {
    if (typeof v === 'string') return fn(v)
    if (depth > 64 || v === null || typeof v !== 'object') return v
    if (Array.isArray(v)) return v.map((x) => walk(x, depth + 1))
    const out: Record<string, unknown> = {}
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) out[k] = walk(x, depth + 1)
    return out
  }
  return walk(value, 0) as T
}

/** Every string inside a JSON-like value passed through redactText (objects and arrays copied). */
export function redactDeep<T>(value: T, secrets?: Iterable<string>): T {
  const list = usable(secrets)
  return mapStrings(value, (s) => redactText(s, list))
}

/** Secret values shorter than this are not searched for in upstream data: they would match ordinary words. */
const MIN_SECRET_CHARS = 6

function base64(text: string): string {
  let bin = ''
  for (const b of new TextEncoder().encode(text)) bin += String.fromCharCode(b)
  return btoa(bin)
}

/**
 * The texts under which a connection's secret values may come back from an upstream: each value
 * bare (so also `Bearer <v>`), URL-encoded, JSON-escaped and base64-encoded, and the base64 of
 * `a:b` for every pair of values (HTTP Basic auth: `username:password`). Longest first, so a
 * form that contains another is replaced whole.
 */
export function secretForms(secrets: Iterable<string>): string[] {
  const all = [...new Set([...secrets].filter((s): s is string => typeof s === 'string' && s.length > 0))]
  const values = all.filter((s) => s.length >= MIN_SECRET_CHARS)
  const out = new Set<string>()
  const add = (v: string) => { if (v.length >= MIN_SECRET_CHARS) out.add(v) }
  for (const v of values) {
    add(v)
    add(encodeURIComponent(v))
    add(JSON.stringify(v).slice(1, -1))
    add(base64(v))
  }
  // Basic auth pairs: only pairs holding at least one value long enough to be a secret.
  for (const a of all) for (const b of all) if (a !== b && (values.includes(a) || values.includes(b))) add(base64(`${a}:${b}`))
  return [...out].sort((a, b) => b.length - a.length)
}

/**
 * Every string (and object key) of a JSON-like value with the given secret forms replaced by
 * REDACTED, 64 levels deep. The value itself is returned when it holds none (the common case:
 * one serialization and a substring search per form).
 */
export function redactSecrets<T>(value: T, forms: readonly string[]): T {
  if (forms.length === 0 || value === undefined || value === null) return value
  if (typeof value === 'string') return (forms.some((f) => value.includes(f)) ? replaceAll(value, forms) : value) as T
  let text: string | undefined
  try { text = JSON.stringify(value) } catch { text = undefined }
  // JSON text escapes `"` and `\`: a secret holding them appears escaped; the forms include that spelling.
  if (text !== undefined && !forms.some((f) => text!.includes(f))) return value
  const walk = (v: unknown, depth: number): unknown => {
    if (typeof v === 'string') return replaceAll(v, forms)
    if (depth > 64 || v === null || typeof v !== 'object') return v
    if (Array.isArray(v)) return v.map((x) => walk(x, depth + 1))
    const out: Record<string, unknown> = {}
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) out[replaceAll(k, forms)] = walk(x, depth + 1)
    return out
  }
  return walk(value, 0) as T
}

function replaceAll(text: string, forms: readonly string[]): string {
  let out = text
  for (const f of forms) if (out.includes(f)) out = out.split(f).join(REDACTED)
  return out
}

function safeDecode(s: string): string {
  try { return decodeURIComponent(s) } catch { return s }
}
