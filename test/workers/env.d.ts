// Types for code that runs inside workerd (test/workers is excluded from the root tsconfig).
/// <reference types="@cloudflare/workers-types" />
/// <reference types="@cloudflare/vitest-plugin/types" />
import type { Env as RunrelayEnv } from '../../src/runtime/workers/env.ts'
import type { Env as HarnessEnv } from './harness-worker.ts'

declare global {
  namespace Cloudflare {
    interface Env extends HarnessEnv, RunrelayEnv {
      LIBSQL_URL: string
      LIBSQL_AUTH_TOKEN: string
      /** The generic fake upstream started by globalSetup. */
      UPSTREAM_URL: string
      /** The webhook receiver started by globalSetup (GET /__received/<name> lists what arrived). */
      WEBHOOK_RECEIVER_URL: string
    }
  }
}
