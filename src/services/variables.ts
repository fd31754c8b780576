import { Validator, type Schema } from '@cfworker/json-schema'
import { ApiError } from './errors.ts'

/**
 * Typed trigger inputs: a workflow's `variables_schema` checked against every trigger's
 * `variables` (API keys, trigger tokens, schedules, replays, the proxy: triggerRun). The
 * validator is @cfworker/json-schema: it interprets the schema instead of compiling it to code,
 * so it runs on Workers, where `new Function` is refused. The schema's shape (runrelay's subset)
 * is checked by zod when the workflow is saved (schemas.ts VariablesSchema).
 */

/** Validators per schema object: a workflow row read from the cache is the same object across requests. */
const validators = new WeakMap<object, Validator>()

/** Errors that only say "a child failed": the child's own error names the path and the reason. */
const WRAPPERS = new Set(['properties', 'items', 'prefixItems', 'additionalProperties', 'allOf', 'anyOf', 'oneOf', '$ref'])

/** `#/a/0/b` (a JSON pointer in a URI fragment) as `body.variables.a.0.b`. */
function pathOf(instanceLocation: string): string {
  const parts = instanceLocation.replace(/^#\/?/, '').split('/').filter(Boolean)
    .map((p) => decodeURIComponent(p).replace(/~1/g, '/').replace(/~0/g, '~'))
  return ['body', 'variables', ...parts].join('.')
}

/** Throws a 400 `invalid_variables` naming each failing path when `variables` do not match `schema`. */
export function assertVariablesMatch(schema: Record<string, unknown> | null | undefined, variables: Record<string, unknown>): void {
  if (!schema) return
  let v = validators.get(schema)
  if (!v) validators.set(schema, (v = new Validator({ type: 'object', ...schema } as Schema, '2020-12', false)))
  const result = v.validate(variables)
  if (result.valid) return
  const details = result.errors.filter((e) => !WRAPPERS.has(e.keyword)).map((e) => ({
    path: pathOf(e.instanceLocation),
    // A `false` schema is what additionalProperties: false turns into for each extra property.
    message: e.keyword === 'false' ? 'not allowed by the workflow\'s variables_schema' : e.error,
    keyword: e.keyword === 'false' ? 'additionalProperties' : e.keyword,
  }))
  const shown = details.length ? details : result.errors.map((e) => ({ path: pathOf(e.instanceLocation), message: e.error, keyword: e.keyword }))
  throw new ApiError(400, 'invalid_variables', `variables do not match the workflow's variables_schema: ${shown[0]!.path}: ${shown[0]!.message}`, shown.slice(0, 50))
}
