// Types for code that runs inside workerd (test/workers is excluded from the root tsconfig).
/// <reference types="@cloudflare/workers-types" />
/// <reference types="@cloudflare/vitest-pool-workers/types" />
import type { Env as HarnessEnv } from './harness-worker.ts'

declare global {
  namespace Cloudflare {
    interface Env extends HarnessEnv {}
  }
}
