// The hooks beside each other: two components reading one run share one socket, one of them
// throttled; onComplete, stop(), enabled; a trigger with a refused token lands in `error`
// (no throw). Open with ?view=hooks&url=…&token=<trigger token>&workflow=<id>.
import { useRef, useState } from 'react'
import { defineWorkflow, useRun, useTrigger } from '@runrelay/react'

const params = new URLSearchParams(location.search)

// The workflow's types, inferred from its JSON Schemas (declared `as const`).
const report = defineWorkflow(params.get('workflow') ?? '', {
  variables: { type: 'object', properties: { from: { type: 'string' }, durationMs: { type: 'integer' } }, required: ['from'] },
  result: { type: 'object', properties: { steps: { type: 'integer' } }, required: ['steps'] },
} as const)

function Watch({ id, name, throttleMs }: { id: string; name: string; throttleMs?: number }) {
  const renders = useRef(0)
  const first = useRef<string | null>(null)
  const [completions, setCompletions] = useState(0)
  const { run, state, stop } = useRun<typeof report>(id, { throttleMs, onComplete: () => setCompletions((n) => n + 1) })
  renders.current++
  first.current ??= state
  // Typed from the schema: run.result is { steps: number } | undefined.
  const steps: number | undefined = run.result?.steps
  return (
    <section data-testid={name}>
      <b>{name}</b> <span data-testid={`${name}-state`}>{state}</span> · first <span data-testid={`${name}-first`}>{first.current}</span>
      {' '}· status <span data-testid={`${name}-status`}>{run.status ?? '…'}</span> · events <span data-testid={`${name}-events`}>{run.events.length}</span>
      {' '}· renders <span data-testid={`${name}-renders`}>{renders.current}</span> · completed <span data-testid={`${name}-completions`}>{completions}</span>
      {' '}· steps <span data-testid={`${name}-steps`}>{steps ?? ''}</span> <button data-testid={`${name}-stop`} onClick={stop}>stop</button>
    </section>
  )
}

export function Hooks() {
  const { trigger, run, error, isLoading } = useTrigger<typeof report>(report)
  const refused = useTrigger(report, { token: 'not-a-token' })
  const [outcome, setOutcome] = useState('')
  const [enabled, setEnabled] = useState(false)
  const disabled = useRun(run?.id, { enabled })
  return (
    <main>
      <h1>hooks</h1>
      <button data-testid="start" disabled={isLoading} onClick={() => trigger({ variables: { from: 'hooks', durationMs: 4_000 } })}>start</button>
      {/* A refused trigger resolves to undefined and sets error: nothing is thrown into the handler. */}
      <button data-testid="refused" onClick={() => refused.trigger({ variables: { from: 'nobody' } }).then((r) => setOutcome(r === undefined ? 'undefined' : r.id))}>refused</button>
      <p>refused: <span data-testid="refused-outcome">{outcome}</span> <span data-testid="refused-error">{refused.error?.message ?? ''}</span></p>
      {error && <p data-testid="error">{error.message}</p>}
      {run && <>
        <Watch id={run.id} name="a" />
        <Watch id={run.id} name="b" throttleMs={60_000} />
        <Watch id={run.id} name="c" />
        <p>disabled hook: <span data-testid="disabled-state">{disabled.state}</span> <span data-testid="disabled-status">{disabled.run.status ?? ''}</span> <button data-testid="enable" onClick={() => setEnabled(true)}>enable</button></p>
      </>}
    </main>
  )
}
