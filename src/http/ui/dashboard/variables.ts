// The trigger form's fields, from a workflow's `variables_schema` (JSON Schema) when it has one,
// else from the `{{name}}` placeholders of its input template. Pure, so it is unit-tested.

export type FieldKind = 'string' | 'number' | 'integer' | 'boolean' | 'enum' | 'json'
export interface Field { name: string; kind: FieldKind; required: boolean; options?: unknown[]; description?: string; format?: string; default?: unknown }
export interface FormSpec { source: 'schema' | 'template' | 'none'; fields: Field[] }

const obj = (v: unknown): v is Record<string, any> => typeof v === 'object' && v !== null && !Array.isArray(v)

function kindOf(s: Record<string, any>): FieldKind {
  if (Array.isArray(s.enum) && s.enum.length) return 'enum'
  const t = Array.isArray(s.type) ? s.type.find((x: unknown) => x !== 'null') : s.type
  return t === 'string' || t === 'number' || t === 'integer' || t === 'boolean' ? t : 'json'
}

/** The form for a workflow: one field per top-level property of its schema, or per template variable. */
export function formOf(wf: { variables_schema?: unknown; input_template?: unknown }): FormSpec {
  const schema = wf.variables_schema
  if (obj(schema) && obj(schema.properties)) {
    const required = new Set(Array.isArray(schema.required) ? schema.required : [])
    return {
      source: 'schema',
      fields: Object.entries(schema.properties).map(([name, s]) => {
        const p = obj(s) ? s : {}
        return { name, kind: kindOf(p), required: required.has(name), options: Array.isArray(p.enum) ? p.enum : undefined, description: typeof p.description === 'string' ? p.description : undefined, format: typeof p.format === 'string' ? p.format : undefined, default: p.default }
      }),
    }
  }
  const names = new Set<string>()
  for (const m of JSON.stringify(wf.input_template ?? null).matchAll(/\{\{\s*([\w.-]+)\s*\}\}/g)) names.add(m[1]!.split('.')[0]!)
  return names.size ? { source: 'template', fields: [...names].map((name) => ({ name, kind: 'string', required: true })) } : { source: 'none', fields: [] }
}

/** Read the form's raw values into `variables`; an error names the field. Empty optional fields are left out. */
export function variablesOf(fields: Field[], raw: Record<string, string | boolean>): { variables: Record<string, unknown> } | { error: string } {
  const out: Record<string, unknown> = {}
  for (const f of fields) {
    const v = raw[f.name]
    if (f.kind === 'boolean') { out[f.name] = v === true; continue }
    const text = typeof v === 'string' ? v.trim() : ''
    if (text === '') { if (f.required) return { error: `${f.name} is required` }; continue }
    if (f.kind === 'number' || f.kind === 'integer') {
      const n = Number(text)
      if (!Number.isFinite(n) || (f.kind === 'integer' && !Number.isInteger(n))) return { error: `${f.name} must be ${f.kind === 'integer' ? 'an integer' : 'a number'}` }
      out[f.name] = n
    } else if (f.kind === 'enum') {
      const hit = (f.options ?? []).find((o) => String(o) === text)
      if (hit === undefined) return { error: `${f.name} must be one of ${(f.options ?? []).join(', ')}` }
      out[f.name] = hit
    } else if (f.kind === 'json') {
      try { out[f.name] = JSON.parse(text) } catch { return { error: `${f.name} must be JSON` } }
    } else out[f.name] = text
  }
  return { variables: out }
}
