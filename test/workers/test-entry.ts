/**
 * The Worker under test: runrelay's real entry (src/runtime/workers/index.ts) plus the
 * harness object the smoke tests use. /do/<name>/… goes to the harness; everything else
 * to runrelay.
 */
import runrelay from '../../src/runtime/workers/index.ts'
import harness from './harness-worker.ts'
import type { Env } from '../../src/runtime/workers/env.ts'
import type { Env as HarnessEnv } from './harness-worker.ts'

export { FeedObject, FeedRelayObject, JobsObject, RunObject, RunShardObject } from '../../src/runtime/workers/index.ts'
export { HarnessObject } from './harness-worker.ts'

export default {
  fetch(request, env, ctx) {
    if (new URL(request.url).pathname.startsWith('/do/')) return harness.fetch(request as any, env)
    return runrelay.fetch(request, env, ctx)
  },
  scheduled(controller, env) {
    return runrelay.scheduled(controller, env)
  },
} satisfies ExportedHandler<Env & HarnessEnv>
