/**
 * Input templates: `{{name}}` takes the run's variables, `[[name]]` its runtime variables.
 * A string that is exactly one placeholder takes the value with its type (number, object…);
 * placeholders inside longer strings are replaced by their text.
 */
const PLACEHOLDER = /\{\{\s*([\w.-]+)\s*\}\}|\[\[\s*([\w.-]+)\s*\]\]/g
const WHOLE = /^(?:\{\{\s*([\w.-]+)\s*\}\}|\[\[\s*([\w.-]+)\s*\]\])$/

export interface RenderResult { value: unknown; missing: string[] }

export function renderTemplate(template: unknown, variables: Record<string, unknown>, runtime: Record<string, unknown>): RenderResult {
  const missing = new Set<string>()
  const lookup = (dyn: string | undefined, rt: string | undefined): unknown => {
    const [bag, name, label] = dyn !== undefined ? [variables, dyn, `{{${dyn}}}`] : [runtime, rt!, `[[${rt}]]`]
    if (!Object.hasOwn(bag, name)) { missing.add(label); return undefined }
    return bag[name]
  }
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
