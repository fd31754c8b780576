/**
 * Input templates: `{{name}}` takes the run's variables, `[[name]]` its runtime variables.
 * A string that is exactly one placeholder takes the value with its type (number, object…);
 * placeholders inside longer strings are replaced by their text.
 *
 * Where a rendered template goes decides how its values are encoded (renderTemplate is for
 * JSON bodies, which are serialised whole; renderPath and renderHeaderValue for the other
 * positions): a value is data in every position, never syntax that changes where a request goes.
 */
const PLACEHOLDER = /\{\{\s*([\w.-]+)\s*\}\}|\[\[\s*([\w.-]+)\s*\]\]/g
const WHOLE = /^(?:\{\{\s*([\w.-]+)\s*\}\}|\[\[\s*([\w.-]+)\s*\]\])$/

export interface RenderResult { value: unknown; missing: string[] }

/** Render a JSON template (a body, an input): values keep their type, and the whole is JSON-serialised by its sender. */
export function renderTemplate(template: unknown, variables: Record<string, unknown>, runtime: Record<string, unknown>): RenderResult {
  const missing = new Set<string>()
  const lookup = lookupIn(variables, runtime, missing)
  const walk = (v: unknown): unknown => {
    if (typeof v === 'string') {
      const whole = WHOLE.exec(v)
      if (whole) return lookup(whole[1], whole[2])
      return v.replace(PLACEHOLDER, (_m, dyn, rt) => {
        const val = lookup(dyn, rt)
        return val === undefined ? '' : typeof val === 'string' ? val : JSON.stringify(val)
      })
    }
    if (Array.isArray(v)) return v.map(walk)
    if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]))
    return v
  }
  const value = template === undefined || template === null ? { ...variables } : walk(template)
  return { value, missing: [...missing] }
}

/** A value that cannot be placed where its template puts it (an object in a path, a line break in a header). */
export class TemplateValueError extends Error {
  constructor(readonly code: 'template_value_not_scalar' | 'template_dot_segment' | 'invalid_header_value', message: string) {
    super(message)
    this.name = 'TemplateValueError'
  }
}

function lookupIn(variables: Record<string, unknown>, runtime: Record<string, unknown>, missing: Set<string>) {
  return (dyn: string | undefined, rt: string | undefined): unknown => {
    const [bag, name, label] = dyn !== undefined ? [variables, dyn, `{{${dyn}}}`] : [runtime, rt!, `[[${rt}]]`]
    if (!Object.hasOwn(bag, name)) { missing.add(label); return undefined }
    return bag[name]
  }
}

/**
 * The text of a value for a URL or a header: strings, finite numbers and booleans only. Arrays
 * and objects are refused rather than serialised: their JSON text has no agreed encoding in a
 * path or a query, and `["/../admin"]` is how a value escapes its segment.
 */
function scalarText(value: unknown, label: string, where: string): string {
  if (typeof value === 'string') return value
  if ((typeof value === 'number' && Number.isFinite(value)) || typeof value === 'boolean') return String(value)
  const kind = value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value === 'object' ? 'an object' : typeof value
  throw new TemplateValueError('template_value_not_scalar', `${label} is ${kind}; only a string, a number or a boolean can go in a request ${where}`)
}

/** Whether a path segment is `.` or `..` once percent-decoded (the URL parser reads `%2e` as a dot too). */
export function isDotSegment(segment: string): boolean {
  const s = segment.replace(/%2e/gi, '.')
  return s === '.' || s === '..'
}

/**
 * Render a request path template (`/reports/{{company}}/start?lang={{lang}}`): every value is
 * percent-encoded with encodeURIComponent, so `/ ? # & = %` in it stay data; a path segment
 * that renders to `.` or `..` is refused, as is an array or object value (TemplateValueError).
 */
export function renderPath(template: string, variables: Record<string, unknown>, runtime: Record<string, unknown> = {}): { value: string; missing: string[] } {
  const missing = new Set<string>()
  const lookup = lookupIn(variables, runtime, missing)
  const q = template.indexOf('?')
  const [path, query] = q === -1 ? [template, ''] : [template.slice(0, q), template.slice(q)]
  const fill = (text: string, where: string) => text.replace(PLACEHOLDER, (m, dyn, rt) => {
    const val = lookup(dyn, rt)
    return val === undefined ? '' : encodeURIComponent(scalarText(val, m.replace(/\s+/g, ''), where))
  })
  // Segment by segment, so a segment made of values alone cannot become `..`.
  const segments = path.split('/').map((seg) => {
    const out = fill(seg, 'path')
    if (out !== seg && isDotSegment(out)) throw new TemplateValueError('template_dot_segment', `the path segment ${JSON.stringify(seg)} renders to ${JSON.stringify(out)}, which would move the request up the path`)
    return out
  })
  return { value: segments.join('/') + fill(query, 'query'), missing: [...missing] }
}

/** Header values runrelay sends: visible ASCII, spaces and tabs (no CR, LF, NUL or other control characters). */
const HEADER_VALUE = /^[\t\x20-\x7e]*$/

/** Whether a header value may be sent as is (RFC 9110 field-value, ASCII only). */
export function isSafeHeaderValue(value: string): boolean {
  return HEADER_VALUE.test(value)
}

/**
 * Render a header value template: values as text (strings, numbers, booleans), and the result
 * refused when it holds CR, LF or any other character outside visible ASCII, space and tab.
 */
export function renderHeaderValue(name: string, template: string, variables: Record<string, unknown>, runtime: Record<string, unknown> = {}): { value: string; missing: string[] } {
  const missing = new Set<string>()
  const lookup = lookupIn(variables, runtime, missing)
  const value = template.replace(PLACEHOLDER, (m, dyn, rt) => {
    const val = lookup(dyn, rt)
    return val === undefined ? '' : scalarText(val, m.replace(/\s+/g, ''), `header (${name})`)
  })
  if (!isSafeHeaderValue(value)) throw new TemplateValueError('invalid_header_value', `the value of header ${name} holds a line break or another character that is not visible ASCII`)
  return { value, missing: [...missing] }
}
