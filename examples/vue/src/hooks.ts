// The composables beside each other: two components reading one run share one socket, one of
// them throttled; onComplete, stop(), enabled; a trigger with a refused token lands in `error`
// (no throw). Open with ?view=hooks&url=…&token=<trigger token>&workflow=<id>.
import { defineComponent, h, ref } from 'vue'
import { defineWorkflow, useRun, useTrigger } from '@runrelay/vue'

const params = new URLSearchParams(location.search)
const config = { url: params.get('url') ?? undefined, token: params.get('token') ?? undefined }

// The workflow's types, inferred from its JSON Schemas (declared `as const`).
const report = defineWorkflow(params.get('workflow') ?? '', {
  variables: { type: 'object', properties: { from: { type: 'string' }, durationMs: { type: 'integer' } }, required: ['from'] },
  result: { type: 'object', properties: { steps: { type: 'integer' } }, required: ['steps'] },
} as const)

const Watch = defineComponent({
  props: { id: { type: String, required: true }, name: { type: String, required: true }, throttleMs: Number },
  setup(props) {
    const completions = ref(0)
    const view = useRun<typeof report>(() => props.id, { ...config, throttleMs: () => props.throttleMs, onComplete: () => { completions.value++ } })
    const first = view.value.state
    let renders = 0
    return () => {
      renders++
      const { run, state } = view.value
      // Typed from the schema: run.result is { steps: number } | undefined.
      const steps: number | undefined = run.result?.steps
      const n = props.name
      return h('section', { 'data-testid': n }, [
        h('b', n), ' ', h('span', { 'data-testid': `${n}-state` }, state), ' · first ', h('span', { 'data-testid': `${n}-first` }, first),
        ' · status ', h('span', { 'data-testid': `${n}-status` }, run.status ?? '…'), ' · events ', h('span', { 'data-testid': `${n}-events` }, String(run.events.length)),
        ' · renders ', h('span', { 'data-testid': `${n}-renders` }, String(renders)), ' · completed ', h('span', { 'data-testid': `${n}-completions` }, String(completions.value)),
        ' · steps ', h('span', { 'data-testid': `${n}-steps` }, steps === undefined ? '' : String(steps)), ' ',
        h('button', { 'data-testid': `${n}-stop`, onClick: view.stop }, 'stop'),
      ])
    }
  },
})

export const Hooks = defineComponent(() => {
  const { trigger, run, error, isLoading } = useTrigger<typeof report>(report, config)
  const refused = useTrigger<typeof report>(report, { ...config, token: 'not-a-token' })
  const outcome = ref('')
  const enabled = ref(false)
  const disabled = useRun(() => run.value?.id, { ...config, enabled })
  return () => h('main', [
    h('h1', 'hooks'),
    h('button', { 'data-testid': 'start', disabled: isLoading.value, onClick: () => trigger({ variables: { from: 'hooks', durationMs: 4_000 } }) }, 'start'),
    // A refused trigger resolves to undefined and sets error: nothing is thrown into the handler.
    h('button', { 'data-testid': 'refused', onClick: () => refused.trigger({ variables: { from: 'nobody' } }).then((r) => { outcome.value = r === undefined ? 'undefined' : r.id }) }, 'refused'),
    h('p', ['refused: ', h('span', { 'data-testid': 'refused-outcome' }, outcome.value), ' ', h('span', { 'data-testid': 'refused-error' }, refused.error.value?.message ?? '')]),
    error.value ? h('p', { 'data-testid': 'error' }, error.value.message) : null,
    ...(run.value ? [
      h(Watch, { key: `a-${run.value.id}`, id: run.value.id, name: 'a' }),
      h(Watch, { key: `b-${run.value.id}`, id: run.value.id, name: 'b', throttleMs: 60_000 }),
      h(Watch, { key: `c-${run.value.id}`, id: run.value.id, name: 'c' }),
      h('p', ['disabled hook: ', h('span', { 'data-testid': 'disabled-state' }, disabled.value.state), ' ', h('span', { 'data-testid': 'disabled-status' }, disabled.value.run.status ?? ''), ' ',
        h('button', { 'data-testid': 'enable', onClick: () => { enabled.value = true } }, 'enable')]),
    ] : []),
  ])
})
