// Node 20 and 22: trigger a run with a trigger token and follow it live with @runrelay/client.
// Node 22+ has a global WebSocket; Node 20 needs the `ws` package (npm install ws).
import { triggerRun, watchRun } from '@runrelay/client'

const { RUNRELAY_URL: url, RUNRELAY_TOKEN: token, RUNRELAY_WORKFLOW: workflowId } = process.env
const WebSocket = globalThis.WebSocket ?? (await import('ws')).WebSocket

const run = await triggerRun({ url, token, workflowId, variables: { from: `node ${process.version}` } })
console.log(`run ${run.id} ${run.status}`)
const live = watchRun({ url, token, runId: run.id, WebSocket })
const last = await new Promise((resolve) => live.subscribe(({ run }) => {
  if (run.status) console.log(`seq ${run.lastSeq} ${run.status}${run.progress !== undefined ? ` ${Math.round(run.progress * 100)}%` : ''}`)
  if (run.finished) resolve(run)
}))
live.close()
console.log(JSON.stringify({ runtime: `node ${process.version}`, status: last.status, events: last.events.length, outputs: Object.keys(last.outputs) }))
process.exit(last.status === 'completed' ? 0 : 1)
