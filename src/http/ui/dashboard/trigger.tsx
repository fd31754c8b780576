/** @jsxImportSource hono/jsx/dom */
import { useEffect, useState } from 'hono/jsx/dom'
import { api, type Run, type Workflow } from './api.ts'
import { errorText, showToast } from './ui.tsx'
import { formOf, variablesOf, type Field } from './variables.ts'

const inputType = (f: Field) => (f.kind === 'number' || f.kind === 'integer' ? 'number' : f.format === 'email' ? 'email' : f.format === 'date' ? 'date' : f.format === 'uri' ? 'url' : 'text')

function FieldInput({ f }: { f: Field }) {
  const name = `v:${f.name}`
  const def = f.default === undefined ? '' : typeof f.default === 'string' ? f.default : JSON.stringify(f.default)
  const title = <span>{f.name}{f.required ? ' *' : ''}{f.description && <span class="muted small"> · {f.description}</span>}</span>
  if (f.kind === 'boolean') return <label class="check"><input type="checkbox" name={name} data-var={f.name} checked={f.default === true} />{title}</label>
  if (f.kind === 'enum') return <label>{title}<select name={name} data-var={f.name} required={f.required}>{!f.required && <option value="">—</option>}{(f.options ?? []).map((o) => <option value={String(o)} selected={o === f.default}>{String(o)}</option>)}</select></label>
  if (f.kind === 'json') return <label>{title} (JSON)<textarea name={name} data-var={f.name} required={f.required}>{def}</textarea></label>
  return <label>{title}<input type={inputType(f)} step={f.kind === 'number' ? 'any' : undefined} name={name} data-var={f.name} required={f.required} value={def} /></label>
}

/** Trigger a run: a form built from the workflow's variables (schema, else template), or raw JSON. */
export function TriggerDialog({ workflows, preset, onClose }: { workflows: Workflow[]; preset?: string; onClose: () => void }) {
  const [wfId, setWfId] = useState(preset && workflows.some((w) => w.id === preset) ? preset : workflows[0]?.id ?? '')
  const [wf, setWf] = useState<Workflow | undefined>(undefined)
  const [raw, setRaw] = useState(false)
  const [busy, setBusy] = useState(false)
  // The list holds summaries; the workflow itself has the template and the schema.
  useEffect(() => { setWf(undefined); if (wfId) api<Workflow>('GET', `/v1/workflows/${encodeURIComponent(wfId)}`).then(setWf, () => setWf(workflows.find((w) => w.id === wfId))) }, [wfId])
  const spec = wf ? formOf(wf) : { source: 'none' as const, fields: [] }
  const useRaw = raw || spec.source === 'none'
  return (
    <div class="modal" role="dialog" aria-modal="true">
      <form class="card dlg-body" id="trigger-form" onSubmit={(e: Event) => {
        e.preventDefault()
        const form = e.target as HTMLFormElement
        const el = form.elements
        let variables: Record<string, unknown>
        if (useRaw) {
          try { variables = JSON.parse((el.namedItem('vars') as HTMLTextAreaElement).value || '{}') } catch { return showToast('Variables must be JSON') }
        } else {
          const values: Record<string, string | boolean> = {}
          for (const input of form.querySelectorAll<HTMLInputElement>('[data-var]')) values[input.dataset.var!] = input.type === 'checkbox' ? input.checked : input.value
          const read = variablesOf(spec.fields, values)
          if ('error' in read) return showToast(read.error)
          variables = read.variables
        }
        const tags = (el.namedItem('tags') as HTMLInputElement).value.split(',').map((s) => s.trim()).filter(Boolean)
        setBusy(true)
        api<Run>('POST', `/v1/workflows/${encodeURIComponent(wfId)}/runs`, { variables, tags })
          .then((r) => { onClose(); showToast(`Triggered ${r.id}`) }, (err) => showToast(errorText(err, 'trigger runs')))
          .finally(() => setBusy(false))
      }}>
        <h2>Trigger a run</h2>
        <label>Workflow<select id="tr-wf" name="wf" required onChange={(e: Event) => setWfId((e.target as HTMLSelectElement).value)}>{workflows.map((w) => <option value={w.id} selected={w.id === wfId}>{w.name}</option>)}</select></label>
        {!wf ? <p class="muted small">loading…</p> : useRaw
          ? <label>Variables (JSON)<textarea id="tr-vars" name="vars">{'{}'}</textarea></label>
          : <div class="fields" id="tr-fields" data-source={spec.source}>{spec.fields.map((f) => <FieldInput f={f} />)}</div>}
        {spec.source !== 'none' && <button type="button" class="link" id="tr-raw" onClick={() => setRaw(!raw)}>{raw ? 'Use the form' : 'Edit as JSON'}</button>}
        <label>Tags (comma separated)<input id="tr-tags" name="tags" placeholder="team:a, nightly" /></label>
        <div class="row"><span class="spacer" /><button type="button" id="tr-cancel" onClick={onClose}>Cancel</button><button class="primary" id="tr-go" type="submit" disabled={busy || !wf}>Trigger</button></div>
      </form>
    </div>
  )
}
