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

/** The part of a local runtime (createLocalRuntime) its entry drives once the server listens. */
interface Serving {
  listeningOn(port: number): void
  resume(): Promise<number>
  shutdown(): Promise<void>
}

/**
 * The end of every local runtime's start (Node, Deno, Bun): tell the runtime its port, resume
 * its runs, and a `stop` that runs once: the runtime's shutdown (1012 to streams, writes in
 * flight finished), then `closeServer` (the runtime's own), then the database client.
 */
export async function serving(runtime: Serving, listening: { hostname: string; port: number }, closeServer: () => Promise<void>, client: { close(): void }) {
  const { hostname, port } = listening
  runtime.listeningOn(port)
  const resumed = await runtime.resume()
  let stopping: Promise<void> | undefined
  const stop = () => (stopping ??= (async () => {
    await runtime.shutdown()
    await closeServer()
    client.close()
  })())
  return { port, url: `http://${hostname.includes(':') ? `[${hostname}]` : hostname}:${port}`, resumed, stop }
}
