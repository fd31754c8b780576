// A React page that starts a run with a trigger token and shows it live.
// Settings come from the query string: ?url=<runrelay server>&token=<trigger token>&workflow=<workflow id>
import { StrictMode } from 'react'
import { createRoot } from 'react-dom/client'
import { RunRelayProvider, useRun, useRuns, useTrigger } from '@runrelay/react'
import { Hooks } from './hooks.tsx'

const params = new URLSearchParams(location.search)
const workflow = params.get('workflow') ?? ''

/** Declared output types of this workflow: `run.outputs['step-1']` is typed. */
type Report = { outputs: Record<`step-${number}`, { step: number }>; result: { steps: number } }

function Run({ runId }: { runId: string }) {
  const { run, state } = useRun<Report>(runId)
  return (
    <section>
      <p>run <code>{runId}</code> · connection <span data-testid="state">{state}</span></p>
      <p>status <b data-testid="status">{run.status ?? '…'}</b> {run.progress !== undefined && <progress max={1} value={run.progress} />}</p>
      {run.message && <p data-testid="message">{run.message}</p>}
      <p>outputs: <span data-testid="outputs">{Object.keys(run.outputs).join(', ')}</span></p>
      {run.finished && <p data-testid="done">finished in {run.durationMs} ms after {run.events.length} events</p>}
    </section>
  )
}

function App() {
  const { trigger, run, isLoading, error } = useTrigger(workflow)
  const { runs } = useRuns()
  return (
    <main>
      <h1>runrelay + React</h1>
      <button data-testid="start" disabled={isLoading} onClick={() => trigger({ variables: { from: 'react' } })}>Start a run</button>
      {error && <p data-testid="error">{error.message}</p>}
      {run && <Run runId={run.id} />}
      <h2>My runs</h2>
      <ul data-testid="runs">{runs.map((r) => <li key={r.id}>{r.id}: {r.status}</li>)}</ul>
    </main>
  )
}

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <RunRelayProvider url={params.get('url') ?? undefined} token={params.get('token') ?? undefined}>
      {params.get('view') === 'hooks' ? <Hooks /> : <App />}
    </RunRelayProvider>
  </StrictMode>,
)
