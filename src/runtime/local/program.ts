/** What a runtime's entry program needs of its process (Node and Bun: `process`; Deno: `Deno`). */
export interface ProgramHost {
  exit(code: number): never
  onSignal(signal: 'SIGTERM' | 'SIGINT', handler: () => void): void
}

interface Started {
  runtime: { rootKeyCreated?: string }
  url: string
  resumed: number
  stop(): Promise<void>
  log(msg: string, extra?: Record<string, unknown>): void
}

/**
 * The server program every local runtime runs (`npm start`, `start:prod`, `start:deno`,
 * `start:bun`): start, or print why not and exit 1; print the root key once; stop cleanly on
 * SIGTERM or SIGINT and exit 0 (1 if stopping failed).
 */
export async function runProgram(start: () => Promise<Started>, host: ProgramHost, listening: Record<string, unknown> = {}): Promise<void> {
  const started = await start().catch((err) => {
    console.error(String(err?.message ?? err))
    return host.exit(1)
  })
  const { runtime, url, resumed, stop, log } = started
  if (runtime.rootKeyCreated) {
    // Shown once: only its hash is stored.
    console.log(`\nroot key (shown once, keep it): ${runtime.rootKeyCreated}\n`)
  }
  log('runrelay listening', { url, resumedRuns: resumed, ...listening })
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    host.onSignal(signal, () => {
      log('shutting down', { signal })
      stop().then(() => host.exit(0), (err) => { console.error(err); host.exit(1) })
    })
  }
}
