import { mkdirSync } from 'node:fs'
import { parseConfig } from '../../config.ts'
import { SecretBox } from '../../core/crypto.ts'
import { errorJson } from '../../http/errors.ts'
import { encryptionKey, logger, openEmbeddedStore } from '../local/embedded.ts'
import { createLocalRuntime } from '../local/runtime.ts'
import { systemResolve } from '../local/system-resolve.ts'
import { runProgram, serving } from '../local/program.ts'
import { nodeKeyFiles } from '../node/key-files.ts'
import type { TopicPublisher } from './topics.ts'
import { createBunWebSockets, type BunEnv, type BunUpgrader } from './websocket.ts'

/** How long a clean shutdown waits for clients to answer the 1012 close handshake. */
const CLOSE_HANDSHAKE_MS = 2_000
/**
 * Bun closes an HTTP connection idle this many seconds (its default is 10, the maximum 255). SSE
 * streams send a comment every heartbeat (15 s by default), so the limit must be above it.
 */
const HTTP_IDLE_TIMEOUT_S = 255

/**
 * The event-loop delay metric samples every 100 ms on Bun rather than prom-client's 10 ms: Bun's
 * monitor is a JS timer, and at 10 ms it alone cost ~3 ms of CPU a second on an idle server (BENCHMARKS.md).
 */
const EVENT_LOOP_PRECISION_MS = 100

/** The part of Bun's global the runtime uses (typed here so the Node type check needs no Bun types). */
interface BunServer extends BunUpgrader, TopicPublisher {
  readonly port: number
  readonly hostname: string
  readonly pendingWebSockets: number
  stop(closeActiveConnections?: boolean): Promise<void>
}
declare const Bun: {
  version: string
  serve(options: {
    hostname: string
    port: number
    idleTimeout: number
    fetch(req: Request, server: BunServer): Response | Promise<Response> | undefined
    error(err: Error): Response
    websocket: ReturnType<typeof createBunWebSockets>['websocket']
  }): BunServer
}

/** Start runrelay on Bun: embedded libSQL file, the in-process hosts Node and Deno use, Bun.serve + its WebSockets. */
export async function startBun(env: Record<string, string | undefined> = process.env) {
  const config = parseConfig(env)
  mkdirSync(config.RUNRELAY_DATA_DIR, { recursive: true })
  const { store, client } = await openEmbeddedStore(config)
  const log = logger(config.RUNRELAY_LOG)
  const sockets = createBunWebSockets({ maxBufferedBytes: config.RUNRELAY_WS_MAX_BUFFERED_BYTES })
  const runtime = await createLocalRuntime({
    store, config, log, upgradeWebSocket: sockets.acceptor, eventLoopPrecisionMs: EVENT_LOOP_PRECISION_MS,
    secrets: await SecretBox.fromKey(await encryptionKey(config, nodeKeyFiles)),
    resolveHost: systemResolve,
  })

  const server = Bun.serve({
    hostname: config.HOST,
    port: config.PORT,
    idleTimeout: HTTP_IDLE_TIMEOUT_S,
    fetch: (req, srv) => runtime.app.fetch(req, { server: srv } satisfies BunEnv),
    error(err) {
      log('request failed', { error: String(err?.stack ?? err) })
      return errorJson(500, 'internal', 'internal error')
    },
    websocket: sockets.websocket,
  })
  sockets.topics.serving(server)
  const started = await serving(runtime, { hostname: config.HOST, port: server.port }, async () => {
    // The 1012 close frames are queued; give clients a moment to answer before cutting the rest.
    await sockets.drained(CLOSE_HANDSHAKE_MS)
    await server.stop(true)
  }, client)
  return { runtime, server, ...started, config, log }
}

if (import.meta.main) {
  await runProgram(() => startBun(), { exit: (code) => process.exit(code), onSignal: (signal, handler) => { process.once(signal, handler) } }, { runtime: 'bun', version: Bun.version })
}
