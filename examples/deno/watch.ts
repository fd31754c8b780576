// Deno: trigger a run with a trigger token and follow it live with @runrelay/client.
import { triggerRun, watchRun, type RunSnapshot } from '@runrelay/client'

const url = Deno.env.get('RUNRELAY_URL'), token = Deno.env.get('RUNRELAY_TOKEN'), workflowId = Deno.env.get('RUNRELAY_WORKFLOW')!
const run = await triggerRun({ url, token, workflowId, variables: { from: `deno ${Deno.version.deno}` } })
console.log(`run ${run.id} ${run.status}`)
const live = watchRun({ url, token, runId: run.id })
const last = await new Promise<RunSnapshot>((resolve) => live.subscribe(({ run }) => { if (run.finished) resolve(run) }))
live.close()
console.log(JSON.stringify({ runtime: `deno ${Deno.version.deno}`, status: last.status, events: last.events.length, outputs: Object.keys(last.outputs) }))
Deno.exit(last.status === 'completed' ? 0 : 1)
