import * as z from 'zod'

/**
 * What the OpenAPI (`/openapi.json`) and AsyncAPI (`/asyncapi.json`) documents share: zod
 * schemas turned into JSON Schema components, component names, and the key security schemes.
 */

export type Json = Record<string, unknown>

/**
 * Named zod schemas (`.meta({ id })`) collected as components. zod puts them in `$defs` (or
 * `definitions` for draft-07); here they move to the components and their refs follow. A name
 * whose input form differs from its output form (defaults make fields optional) gets a second
 * entry `<Name>Input` (or `<Name>Output`, whichever comes second).
 */
export class SchemaComponents {
  readonly schemas: Record<string, Json> = {}
  private readonly raw = new Map<string, string>()

  constructor(private readonly target: 'draft-2020-12' | 'draft-7' = 'draft-2020-12', private readonly refBase = '#/components/schemas/') {}

  /** The JSON Schema of `s` with refs into the components. */
  add(s: z.ZodType, io: 'input' | 'output'): Json {
    const json = z.toJSONSchema(s, { io, unrepresentable: 'any', target: this.target, override: io === 'input' ? defaultsAsText : undefined }) as Json
    const defsKey = this.target === 'draft-7' ? 'definitions' : '$defs'
    delete json.$schema
    const defs = (json[defsKey] ?? {}) as Record<string, Json>
    delete json[defsKey]
    const suffix = io === 'input' ? 'Input' : 'Output'
    const names = new Map<string, string>()
    for (const [id, def] of Object.entries(defs)) {
      const seen = this.raw.get(id)
      names.set(id, seen === undefined || seen === JSON.stringify(def) ? id : `${id}${suffix}`)
    }
    // A def that refers to a renamed def is itself a different schema under this io.
    const refsOf = (def: Json) => [...JSON.stringify(def).matchAll(/"#\/(?:\$defs|definitions)\/([^"]+)"/g)].map((m) => m[1]!)
    for (let changed = true; changed;) {
      changed = false
      for (const [id, def] of Object.entries(defs)) {
        if (names.get(id) === id && refsOf(def).some((r) => names.get(r) !== r)) {
          names.set(id, `${id}${suffix}`)
          changed = true
        }
      }
    }
    const refPattern = new RegExp(`"#/${defsKey.replace('$', '\\$')}/([^"]+)"`, 'g')
    const relink = (v: Json): Json => JSON.parse(JSON.stringify(v).replace(refPattern, (_, id: string) => `"${this.refBase}${names.get(id) ?? id}"`))
    for (const [id, def] of Object.entries(defs)) {
      const name = names.get(id)!
      if (!this.raw.has(name)) this.raw.set(name, JSON.stringify(def))
      this.schemas[name] ??= relink(def)
    }
    return relink(json)
  }
}

/**
 * Request schemas keep their defaults in words only: openapi-typescript (by default) reads a
 * `default` as "always present", which would make every defaulted request field required.
 */
function defaultsAsText(ctx: { zodSchema: unknown; jsonSchema: Json }): void {
  const js = ctx.jsonSchema
  if (!('default' in js) || (ctx.zodSchema as { _zod?: { def?: { type?: string } } })._zod?.def?.type !== 'default') return
  const text = `Default: ${JSON.stringify(js.default)}.`
  js.description = js.description ? `${js.description}. ${text}` : text
  delete js.default
}

/** `s` with its first letter upper-cased. */
export const cap = (s: string) => s.charAt(0).toUpperCase() + s.slice(1)

/** `run.status_changed` → `RunStatusChanged`: a name fit for a component or an operation. */
export const pascal = (s: string) => s.split(/[^A-Za-z0-9]+/).filter(Boolean).map(cap).join('')

/**
 * The `bearer` and `apiKey` security schemes both documents declare. OpenAPI spells a header key
 * `apiKey`, AsyncAPI 3 `httpApiKey`.
 */
export function keySecuritySchemes(apiKeyType: 'apiKey' | 'httpApiKey'): Record<'bearer' | 'apiKey', Json> {
  return {
    bearer: { type: 'http', scheme: 'bearer', description: 'An API key (`rr_…`) or a subscriber token.' },
    apiKey: { type: apiKeyType, in: 'header', name: 'X-API-Key', description: 'An API key (`rr_…`).' },
  }
}
