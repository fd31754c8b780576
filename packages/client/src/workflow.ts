import type { RunTypes } from './snapshot.ts'

/**
 * Types, not code: the TypeScript type a JSON Schema describes, for the subset workflows use
 * (type, properties, required, enum, const, items). Declare the schema `as const`:
 * `type Vars = FromSchema<typeof schema>`.
 */
export type FromSchema<S> =
  S extends { enum: readonly (infer E)[] } ? E
  : S extends { const: infer C } ? C
  : S extends { type: 'string' } ? string
  : S extends { type: 'number' | 'integer' } ? number
  : S extends { type: 'boolean' } ? boolean
  : S extends { type: 'null' } ? null
  : S extends { type: 'array'; items: infer I } ? FromSchema<I>[]
  : S extends { type: 'array' } ? unknown[]
  : S extends { properties: infer P } ? ObjectOf<P, S extends { required: readonly (infer R)[] } ? R : never>
  : S extends { type: 'object' } ? Record<string, unknown>
  : unknown
type ObjectOf<P, R> = Flat<
  { -readonly [K in keyof P as K extends R ? K : never]: FromSchema<P[K]> } & { -readonly [K in keyof P as K extends R ? never : K]?: FromSchema<P[K]> }
>
type Flat<T> = { [K in keyof T]: T[K] } & {}

/** What a workflow takes and gives: its variables, its outputs by key, its result. */
export interface WorkflowTypes extends RunTypes {
  variables?: Record<string, unknown>
}

/** JSON Schemas of a workflow (its `variables_schema`, and what its outputs and result look like), declared `as const`. */
export interface WorkflowSchemas {
  variables?: object
  outputs?: Record<string, object>
  result?: object
}

/** The types a set of schemas describes. */
export type TypesOf<S extends WorkflowSchemas> = {
  variables: S extends { variables: infer V } ? (FromSchema<V> extends Record<string, unknown> ? FromSchema<V> : Record<string, unknown>) : Record<string, unknown>
  outputs: S extends { outputs: infer O } ? { [K in keyof O]: FromSchema<O[K]> } : Record<string, unknown>
  result: S extends { result: infer R } ? FromSchema<R> : unknown
}

/** A workflow id that carries its types, so hooks infer variables, outputs and result from it. */
export interface WorkflowRef<W extends WorkflowTypes = WorkflowTypes> {
  readonly id: string
  readonly schemas?: WorkflowSchemas
  /** Phantom: only the type exists. */
  readonly types?: W
}

/** The run types of a workflow ref, or the run types themselves. */
export type RunTypesOf<T> = T extends WorkflowRef<infer W> ? W : T extends RunTypes ? T : RunTypes
/** The variables a workflow ref takes. */
export type VariablesOf<T> = RunTypesOf<T> extends { variables: infer V } ? (V extends Record<string, unknown> ? V : Record<string, unknown>) : Record<string, unknown>

/**
 * Name a workflow with its types: from a type argument (`defineWorkflow<{ variables: {…}; result: {…} }>('wf_1')`)
 * or inferred from JSON Schemas given `as const` (`defineWorkflow('wf_1', { variables: schema })`).
 */
export function defineWorkflow<W extends WorkflowTypes = WorkflowTypes>(id: string): WorkflowRef<W>
export function defineWorkflow<const S extends WorkflowSchemas>(id: string, schemas: S): WorkflowRef<TypesOf<S>>
export function defineWorkflow(id: string, schemas?: WorkflowSchemas): WorkflowRef {
  return { id, schemas }
}
