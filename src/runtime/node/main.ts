import { serve } from '@hono/node-server'
import type { Hono } from 'hono'
import type { AuthEnv } from '../../http/auth.ts'
import { mkdirSync } from 'node:fs'
import { parseConfig } from '../../config.ts'
import { SecretBox } from '../../core/crypto.ts'
import { encryptionKey, logger, openEmbeddedStore } from '../local/embedded.ts'
import { createLocalRuntime } from '../local/runtime.ts'
import { runProgram, serving } from '../local/program.ts'
import { nodeKeyFiles } from './key-files.ts'
import { pinnedTransport } from './pinned-transport.ts'
import { answerClientError } from './client-errors.ts'
import { createNodeWebSockets } from './websocket.ts'

/** How long an idle keep-alive connection stays open (longer than common client and load-balancer idle timeouts, 60 s). */
const KEEP_ALIVE_TIMEOUT_MS = 65_000

/** Start runrelay on Node: embedded libSQL file, in-process hosts, HTTP + WebSocket server. */
export async function startNode(env: Record<string, string | undefined> = process.env) {
  const config = parseConfig(env)
  mkdirSync(config.RUNRELAY_DATA_DIR, { recursive: true })
  const { store, client } = await openEmbeddedStore(config)
  const log = logger(config.RUNRELAY_LOG)
  let appRef: Hono<AuthEnv> | undefined
  // Stream upgrades go through the app (auth, validation); the sockets are upgraded here with `ws`.
  const nodeWs = createNodeWebSockets(() => appRef!.fetch)
  // Upstream requests connect only to the addresses the outbound guard checked (pinned-transport.ts).
  const outbound = pinnedTransport({ allowPrivate: config.RUNRELAY_ALLOW_PRIVATE_NETWORK })
  const runtime = await createLocalRuntime({
    store, config, log, upgradeWebSocket: nodeWs.acceptor,
    secrets: await SecretBox.fromKey(await encryptionKey(config, nodeKeyFiles)),
    resolveHost: outbound.resolveHost, fetch: outbound.fetch,
  })
  appRef = runtime.app

  const server = serve({
    fetch: runtime.app.fetch, port: config.PORT, hostname: config.HOST,
    // Explicit, so a client that trickles its headers or body (slow loris) is cut off: Node checks
    // these every connectionsCheckingInterval. Headers larger than 16 KiB get a 431 (client-errors.ts).
    serverOptions: {
      headersTimeout: config.RUNRELAY_HEADERS_TIMEOUT_MS,
      requestTimeout: Math.max(config.RUNRELAY_REQUEST_TIMEOUT_MS, config.RUNRELAY_HEADERS_TIMEOUT_MS),
      connectionsCheckingInterval: Math.min(1_000, config.RUNRELAY_HEADERS_TIMEOUT_MS),
      maxHeaderSize: 16 * 1024,
    },
  })
  nodeWs.inject(server as import('node:http').Server)
  // Keep idle keep-alive connections longer than clients and load balancers do (Node's 5 s is
  // shorter than most pools' idle time): otherwise a client may reuse a socket the server is
  // closing at that instant and get a reset instead of an answer.
  ;(server as import('node:http').Server).keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS
  // Requests Node's parser refuses: JSON errors, and a 414 (not 431) for URLs past 16 KiB.
  server.on('clientError', answerClientError)
  await new Promise<void>((resolve) => server.once('listening', () => resolve()))
  const address = server.address()
  const port = typeof address === 'object' && address ? address.port : config.PORT
  const started = await serving(runtime, { hostname: config.HOST, port }, () => new Promise<void>((resolve) => {
    server.close(() => resolve())
    if ('closeAllConnections' in server) server.closeAllConnections()
  }).then(() => outbound.close()), client)
  return { runtime, server, ...started, config, log }
}

/** The `npm start` / `node dist/main.mjs` program: start, print the root key once, stop on SIGTERM/SIGINT. */
export function runMain(): Promise<void> {
  return runProgram(() => startNode(), { exit: (code) => process.exit(code), onSignal: (signal, handler) => { process.once(signal, handler) } })
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('src/runtime/node/main.ts')) await runMain()
