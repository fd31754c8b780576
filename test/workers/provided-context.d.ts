// Values globalSetup (Node) provides to the Workers test project; shared by
// global-setup.ts (provide) and the workerd tests / vitest.workers.config.ts (inject).
import 'vitest'

declare module 'vitest' {
  export interface ProvidedContext {
    libsqlAuthToken: string
    upstreamUrl: string
    webhookReceiverUrl: string
  }
}
