/// <reference lib="deno.ns" />
import type { Context } from 'hono'
import type { UpgradeWebSocket, WSEvents } from 'hono/ws'
import { parseConfig } from '../../config.ts'
import { SecretBox } from '../../core/crypto.ts'
import type { ResolveHost } from '../../core/outbound.ts'
import { errorJson } from '../../http/errors.ts'
import { encryptionKey, logger, openEmbeddedStore, type KeyFiles } from '../local/embedded.ts'
import { createLocalRuntime } from '../local/runtime.ts'
import { runProgram, serving } from '../local/program.ts'
import { upgradeWebSocket } from './websocket.ts'

/** How long a clean shutdown waits for clients to answer the 1012 close handshake. */
const CLOSE_HANDSHAKE_MS = 2_000
/** How long a clean shutdown then waits for the remaining connections before exiting anyway. */
const SHUTDOWN_GRACE_MS = 3_000

/** Key files through Deno's file API. */
const denoKeyFiles: KeyFiles = {
  async read(path) {
    try { return await Deno.readTextFile(path) } catch (err) { if (err instanceof Deno.errors.NotFound) return undefined; throw err }
  },
  async createExclusive(path, text) {
    try { await Deno.writeTextFile(path, text, { mode: 0o600, createNew: true }) } catch (err) { if (err instanceof Deno.errors.AlreadyExists) return false; throw err }
    await Deno.chmod(path, 0o600)
    return true
  },
}

/**
 * DNS for the outbound guard: A and AAAA through Deno's resolver. Unlike Node's `lookup`, this
 * asks the DNS servers directly and does not read /etc/hosts, so names only known there fail
 * to resolve and are refused (unless RUNRELAY_ALLOW_PRIVATE_NETWORK skips the check).
 */
export const resolveHost: ResolveHost = async (host) => {
  const name = host.replace(/\.$/, '')
  const answers = await Promise.allSettled([Deno.resolveDns(name, 'A'), Deno.resolveDns(name, 'AAAA')])
  const addresses = answers.flatMap((a) => (a.status === 'fulfilled' ? a.value : []))
  if (addresses.length === 0) {
    const failed = answers.find((a): a is PromiseRejectedResult => a.status === 'rejected')
    if (failed) throw failed.reason
  }
  return addresses
}

/**
 * The upgradeWebSocket of websocket.ts, remembering the open sockets. Deno.serve's shutdown() closes any
 * socket still open with 1001, which would overtake the 1012 the runtime has just queued (Deno
 * sends close frames asynchronously); so shutdown first waits here for those handshakes.
 */
type CreateEvents = (c: Context) => WSEvents<WebSocket> | Promise<WSEvents<WebSocket>>

function trackedUpgrade(inner: UpgradeWebSocket<WebSocket>) {
  const open = new Set<WebSocket>()
  const track = (events: WSEvents<WebSocket>): WSEvents<WebSocket> => ({
    ...events,
    onOpen: (evt, ws) => { if (ws.raw) open.add(ws.raw); events.onOpen?.(evt, ws) },
    onClose: (evt, ws) => { if (ws.raw) open.delete(ws.raw); events.onClose?.(evt, ws) },
  })
  // Both call forms of UpgradeWebSocket: (createEvents, options) and (context, events, options).
  const wrapped = ((a: Context | CreateEvents, b?: unknown, c?: unknown) => {
    if (typeof a !== 'function') return inner(a, track(b as WSEvents<WebSocket>), c)
    const create = a
    return inner(async (ctx) => track(await create(ctx)), b)
  }) as UpgradeWebSocket<WebSocket>
  async function drained(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while ([...open].some((s) => s.readyState !== WebSocket.CLOSED) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20))
    }
  }
  return { upgradeWebSocket: wrapped, drained }
}

/** Start runrelay on Deno: embedded libSQL file, in-process hosts (shared with Node), Deno.serve + WebSockets. */
export async function startDeno(env: Record<string, string | undefined> = Deno.env.toObject()) {
  const config = parseConfig(env)
  await Deno.mkdir(config.RUNRELAY_DATA_DIR, { recursive: true })
  const { store, client } = await openEmbeddedStore(config)
  const log = logger(config.RUNRELAY_LOG)
  const sockets = trackedUpgrade(upgradeWebSocket)
  const runtime = await createLocalRuntime({
    store, config, log, upgradeWebSocket: sockets.upgradeWebSocket,
    secrets: await SecretBox.fromKey(await encryptionKey(config, denoKeyFiles)),
    resolveHost,
  })

  let listening!: (addr: Deno.NetAddr) => void
  const listened = new Promise<Deno.NetAddr>((resolve) => (listening = resolve))
  const server = Deno.serve({
    hostname: config.HOST,
    port: config.PORT,
    // The default onListen prints to stdout; the entry logs its own line instead.
    onListen: (addr) => listening(addr as Deno.NetAddr),
    onError: (err) => {
      log('request failed', { error: String((err as Error)?.stack ?? err) })
      return errorJson(500, 'internal', 'internal error')
    },
  }, runtime.app.fetch)
  const addr = await listened
  const started = await serving(runtime, addr, async () => {
    await sockets.drained(CLOSE_HANDSHAKE_MS)
    // shutdown() waits for every connection; closed sockets and ended SSE streams go quickly,
    // but a client that never answers the close handshake must not hold the process.
    let timer: ReturnType<typeof setTimeout> | undefined
    await Promise.race([
      server.shutdown(),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, SHUTDOWN_GRACE_MS))),
    ])
    clearTimeout(timer)
  }, client)
  return { runtime, server, ...started, config, log }
}

if (import.meta.main) {
  await runProgram(() => startDeno(), { exit: (code) => Deno.exit(code), onSignal: (signal, handler) => Deno.addSignalListener(signal, handler) }, { runtime: 'deno', version: Deno.version.deno })
}
