import { describe, expect, it } from 'vitest'
import { formOf, variablesOf } from '../../src/http/ui/dashboard/variables.ts'

// The dashboard's trigger form: fields from a workflow's variables_schema, else from its template.
describe('trigger form fields', () => {
  it('come from the schema when there is one: kinds, enums, required, defaults', () => {
    const spec = formOf({
      input_template: { ignored: '{{other}}' },
      variables_schema: {
        type: 'object', required: ['customer'],
        properties: { customer: { type: 'string', format: 'email' }, tier: { enum: ['free', 'pro'], default: 'free' }, seats: { type: ['integer', 'null'] }, ok: { type: 'boolean' }, meta: { type: 'object' }, list: { type: 'array' } },
      },
    })
    expect(spec.source).toBe('schema')
    expect(spec.fields.map((f) => [f.name, f.kind, f.required])).toEqual([
      ['customer', 'string', true], ['tier', 'enum', false], ['seats', 'integer', false], ['ok', 'boolean', false], ['meta', 'json', false], ['list', 'json', false],
    ])
    expect(spec.fields[0]!.format).toBe('email')
    expect(spec.fields[1]!.default).toBe('free')
  })

  it('fall back to the template placeholders ({{name}} only, each once), or to raw JSON', () => {
    expect(formOf({ input_template: { a: '{{customer}}', b: ['{{ customer }}', '{{ report.id }}'], c: '[[runtime]]' } }))
      .toEqual({ source: 'template', fields: [{ name: 'customer', kind: 'string', required: true }, { name: 'report', kind: 'string', required: true }] })
    expect(formOf({ input_template: null })).toEqual({ source: 'none', fields: [] })
    expect(formOf({ variables_schema: { type: 'object' } , input_template: {} }).source).toBe('none')
  })

  it('read values with their types and name the field that is wrong', () => {
    const { fields } = formOf({ variables_schema: { required: ['n'], properties: { n: { type: 'integer' }, x: { type: 'number' }, e: { enum: [1, 'two'] }, j: { type: 'object' }, b: { type: 'boolean' }, s: { type: 'string' } } } })
    expect(variablesOf(fields, { n: '3', x: '1.5', e: '1', j: '{"a":1}', b: true, s: '' })).toEqual({ variables: { n: 3, x: 1.5, e: 1, j: { a: 1 }, b: true } })
    expect(variablesOf(fields, { n: '' })).toEqual({ error: 'n is required' })
    expect(variablesOf(fields, { n: '1.5' })).toEqual({ error: 'n must be an integer' })
    expect(variablesOf(fields, { n: '1', x: 'abc' })).toEqual({ error: 'x must be a number' })
    expect(variablesOf(fields, { n: '1', e: 'three' })).toEqual({ error: 'e must be one of 1, two' })
    expect(variablesOf(fields, { n: '1', j: '{' })).toEqual({ error: 'j must be JSON' })
  })
})
