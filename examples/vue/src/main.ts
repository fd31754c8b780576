// A Vue page that starts a run with a trigger token and shows it live (render functions: no SFC compiler needed).
// Settings come from the query string: ?url=<runrelay server>&token=<trigger token>&workflow=<workflow id>
import { computed, createApp, defineComponent, h } from 'vue'
import { useRun, useRuns, useTrigger } from '@runrelay/vue'
import { Hooks } from './hooks.ts'

const params = new URLSearchParams(location.search)
const config = { url: params.get('url') ?? undefined, token: params.get('token') ?? undefined }

const App = defineComponent(() => {
  const { trigger, run: started, isLoading, error } = useTrigger(params.get('workflow') ?? '', config)
  const view = useRun(() => started.value?.id, config)
  const list = useRuns({}, config)
  const run = computed(() => view.value.run)
  return () => h('main', [
    h('h1', 'runrelay + Vue'),
    h('button', { 'data-testid': 'start', disabled: isLoading.value, onClick: () => trigger({ variables: { from: 'vue' } }) }, 'Start a run'),
    error.value ? h('p', { 'data-testid': 'error' }, error.value.message) : null,
    started.value ? h('section', [
      h('p', ['run ', h('code', started.value.id), ' · connection ', h('span', { 'data-testid': 'state' }, view.value.state)]),
      h('p', ['status ', h('b', { 'data-testid': 'status' }, run.value.status ?? '…'), run.value.progress !== undefined ? h('progress', { max: 1, value: run.value.progress }) : null]),
      h('p', ['outputs: ', h('span', { 'data-testid': 'outputs' }, Object.keys(run.value.outputs).join(', '))]),
      run.value.finished ? h('p', { 'data-testid': 'done' }, `finished in ${run.value.durationMs} ms after ${run.value.events.length} events`) : null,
    ]) : null,
    h('h2', 'My runs'),
    h('ul', { 'data-testid': 'runs' }, list.value.runs.map((r) => h('li', { key: r.id }, `${r.id}: ${r.status}`))),
  ])
})

createApp(params.get('view') === 'hooks' ? Hooks : App).mount('#app')
