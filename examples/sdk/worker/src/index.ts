// A Cloudflare Worker using @runrelay/sdk (fetch only): GET /?env=<the check's env as JSON>.
// @ts-expect-error a plain ES module shared with the Node, Deno and Bun runs
import { check } from '../../check.mjs'

export default {
  async fetch(request: Request): Promise<Response> {
    const env = JSON.parse(new URL(request.url).searchParams.get('env') ?? '{}') as Record<string, string>
    try {
      return Response.json(await check(env, 'workerd'))
    } catch (err) {
      return Response.json({ error: String((err as Error).stack ?? err) }, { status: 500 })
    }
  },
}
