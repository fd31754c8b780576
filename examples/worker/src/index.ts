// A Cloudflare Worker that starts a run with a trigger token and waits for it over WebSocket
// with @runrelay/client: GET /?url=<runrelay server>&token=<trigger token>&workflow=<workflow id>
import { triggerRun, waitForCompletion } from '@runrelay/client'

export default {
  async fetch(request: Request): Promise<Response> {
    const q = new URL(request.url).searchParams
    const url = q.get('url') ?? undefined, token = q.get('token') ?? undefined
    const run = await triggerRun({ url, token, workflowId: q.get('workflow') ?? '', variables: { from: 'worker' } })
    const done = await waitForCompletion({ url, token, runId: run.id }, { timeoutMs: 20_000 })
    return Response.json({ runtime: 'workerd', run: run.id, status: done.status, seq: done.event.seq })
  },
}
