import { describe, expectTypeOf, it } from 'vitest'
import { defineWorkflow, type FromSchema, type RunTypesOf, type VariablesOf } from '../../packages/client/src/index.ts'
import type { TriggerState, UseRunResult } from '../../packages/react/src/index.ts'
import type { RunStore, TriggerStore } from '../../packages/svelte/src/index.ts'
import type { UseRunResult as VueRunResult, UseTrigger } from '../../packages/vue/src/index.ts'

// Types inferred from a workflow's JSON Schemas: checked by `npm run typecheck` (tsc reads this
// file), and the runtime half checks defineWorkflow keeps the id and schemas.
const schema = {
  type: 'object', required: ['customer', 'tier'],
  properties: { customer: { type: 'string' }, tier: { enum: ['free', 'pro'] }, seats: { type: 'integer' }, tags: { type: 'array', items: { type: 'string' } } },
} as const

describe('types from schemas', () => {
  it('FromSchema maps the subset workflows use', () => {
    expectTypeOf<FromSchema<typeof schema>>().toEqualTypeOf<{ customer: string; tier: 'free' | 'pro'; seats?: number; tags?: string[] }>()
  })

  it('defineWorkflow carries variables, outputs and result to the hooks', () => {
    const report = defineWorkflow('wf_1', { variables: schema, outputs: { summary: { type: 'string' } }, result: { type: 'object', properties: { url: { type: 'string' } }, required: ['url'] } } as const)
    expectTypeOf(report.id).toEqualTypeOf<string>()
    expectTypeOf<VariablesOf<typeof report>>().toEqualTypeOf<{ customer: string; tier: 'free' | 'pro'; seats?: number; tags?: string[] }>()
    expectTypeOf<UseRunResult<RunTypesOf<typeof report>>['run']['result']>().toEqualTypeOf<{ url: string } | undefined>()
    expectTypeOf<UseRunResult<RunTypesOf<typeof report>>['run']['outputs']['summary']>().toEqualTypeOf<string | undefined>()
    expectTypeOf<Parameters<TriggerState<typeof report>['trigger']>[0]>().toEqualTypeOf<{ variables?: VariablesOf<typeof report>; tags?: string[]; idempotencyKey?: string } | undefined>()
    expectTypeOf<ReturnType<TriggerState<typeof report>['trigger']>>().resolves.toEqualTypeOf<import('../../packages/client/src/index.ts').RunRecord | undefined>()
    // Vue and Svelte infer the same from the ref; their triggers resolve undefined instead of throwing.
    type R = RunTypesOf<typeof report>
    expectTypeOf<VueRunResult<R>['value']['run']['result']>().toEqualTypeOf<{ url: string } | undefined>()
    expectTypeOf<VueRunResult<R>['stop']>().toEqualTypeOf<() => void>()
    expectTypeOf<RunStore<R>['stop']>().toEqualTypeOf<() => void>()
    expectTypeOf<Parameters<UseTrigger<typeof report>['trigger']>[0]>().toEqualTypeOf<{ variables?: VariablesOf<typeof report>; tags?: string[]; idempotencyKey?: string } | undefined>()
    expectTypeOf<ReturnType<UseTrigger<typeof report>['trigger']>>().resolves.toEqualTypeOf<import('../../packages/client/src/index.ts').RunRecord | undefined>()
    expectTypeOf<ReturnType<TriggerStore<typeof report>['trigger']>>().resolves.toEqualTypeOf<import('../../packages/client/src/index.ts').RunRecord | undefined>()
    // A type argument instead of schemas.
    const typed = defineWorkflow<{ variables: { n: number }; result: boolean }>('wf_2')
    expectTypeOf<VariablesOf<typeof typed>>().toEqualTypeOf<{ n: number }>()
    expectTypeOf(report.schemas?.variables).not.toBeUndefined()
    if (report.id !== 'wf_1' || typed.id !== 'wf_2' || report.schemas?.variables !== schema) throw new Error('defineWorkflow lost its id or schemas')
  })
})
