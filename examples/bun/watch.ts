// Bun: trigger a run with a trigger token and follow it live with @runrelay/client.
import { triggerRun, watchRun, type RunSnapshot } from '@runrelay/client'

const { RUNRELAY_URL: url, RUNRELAY_TOKEN: token, RUNRELAY_WORKFLOW: workflowId } = process.env
const run = await triggerRun({ url, token, workflowId: workflowId!, variables: { from: `bun ${Bun.version}` } })
console.log(`run ${run.id} ${run.status}`)
const live = watchRun({ url, token, runId: run.id })
const last = await new Promise<RunSnapshot>((resolve) => live.subscribe(({ run }) => { if (run.finished) resolve(run) }))
live.close()
console.log(JSON.stringify({ runtime: `bun ${Bun.version}`, status: last.status, events: last.events.length, outputs: Object.keys(last.outputs) }))
process.exit(last.status === 'completed' ? 0 : 1)
