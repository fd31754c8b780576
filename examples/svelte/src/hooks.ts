// Shared by the hooks view's components (Hooks.svelte, Watch.svelte).
import { defineWorkflow } from '@runrelay/svelte'

const params = new URLSearchParams(location.search)
export const config = { url: params.get('url') ?? undefined, token: params.get('token') ?? undefined }

// The workflow's types, inferred from its JSON Schemas (declared `as const`).
export const report = defineWorkflow(params.get('workflow') ?? '', {
  variables: { type: 'object', properties: { from: { type: 'string' }, durationMs: { type: 'integer' } }, required: ['from'] },
  result: { type: 'object', properties: { steps: { type: 'integer' } }, required: ['steps'] },
} as const)
