import type { Context } from 'hono'
import { streamSSE } from 'hono/streaming'
import type { UpgradeWebSocket, WSContext } from 'hono/ws'
import type { RunEvent } from '../../core/domain.ts'
import { endsRun, eventsFrame, eventToJson } from '../../core/frames.ts'
import { CLOSE, parseClientMessage, PROTOCOL_VERSION, type ServerMessage } from '../../core/protocol.ts'
import { ReplayGate } from '../../core/replay.ts'
import type { Store } from '../../db/store.ts'
import type { StreamRequest, Streams } from '../../http/hosts.ts'
import type { LocalHub } from './hub.ts'

export interface LocalStreamOptions {
  heartbeatMs: number
  /** Bytes a WebSocket may have queued before it counts as a slow consumer. */
  maxBufferedBytes: number
  /** SSE writes a client may have pending before it counts as a slow consumer. */
  maxPendingWrites: number
}

const REPLAY_PAGE = 500
/** How long a slow consumer has to read up to its close frame before the socket is dropped. */
const SLOW_CONSUMER_GRACE_MS = 5_000

interface Session {
  gate: ReplayGate
  unsubscribe: () => void
}

/** WebSocket and SSE streams for Node and Deno, over the in-process hub. */
export class LocalStreams implements Streams {
  private readonly sockets = new Set<WSContext>()
  private readonly sseClosers = new Set<() => void>()

  constructor(
    private readonly store: Store,
    private readonly hub: LocalHub,
    private readonly upgradeWebSocket: UpgradeWebSocket,
    private readonly opts: LocalStreamOptions,
  ) {}

  open(c: Context, req: StreamRequest): Response | Promise<Response> {
    return req.transport === 'sse' ? this.sse(c, req) : this.ws(c, req)
  }

  private subscribe(req: StreamRequest, deliver: (events: RunEvent[]) => void): Session {
    const isRun = req.runId !== undefined
    const gate = new ReplayGate(req.after, isRun ? (e) => e.seq : (e) => e.id, deliver)
    const unsubscribe = isRun
      ? this.hub.subscribeRun(req.runId!, gate)
      : this.hub.subscribeFeed(req.tenantId, req.filter ?? {}, gate)
    return { gate, unsubscribe }
  }

  private load(req: StreamRequest) {
    return req.runId !== undefined
      ? (after: number) => this.store.listRunEvents(req.runId!, after, REPLAY_PAGE)
      : (after: number) => this.store.listFeedEvents(req.tenantId, after, req.filter ?? {}, REPLAY_PAGE)
  }

  private ws(c: Context, req: StreamRequest): Promise<Response> {
    let session: Session | undefined
    let heartbeat: ReturnType<typeof setInterval> | undefined
    let expiry: ReturnType<typeof setTimeout> | undefined
    const cleanup = (ws?: WSContext) => {
      session?.unsubscribe()
      clearInterval(heartbeat)
      clearTimeout(expiry)
      if (ws) this.sockets.delete(ws)
    }
    const armExpiry = (ws: WSContext, at: number | undefined) => {
      clearTimeout(expiry)
      if (at !== undefined) expiry = setTimeout(() => ws.close(CLOSE.UNAUTHORIZED, 'token expired'), Math.max(0, at - Date.now()))
    }
    const send = (ws: WSContext, msg: ServerMessage) => ws.send(JSON.stringify(msg))
    const handler = this.upgradeWebSocket(() => ({
      onOpen: (_evt, ws) => {
        this.sockets.add(ws)
        let closing = false
        session = this.subscribe(req, (events) => {
          if (closing) return
          const buffered = (ws.raw as { bufferedAmount?: number } | undefined)?.bufferedAmount ?? 0
          if (buffered > this.opts.maxBufferedBytes) {
            closing = true
            cleanup(ws)
            ws.close(CLOSE.SLOW_CONSUMER, 'slow consumer: reconnect with after')
            // The close frame waits behind what is buffered; a client that never reads would hold
            // that memory until ws's own 30 s close timeout: drop the connection sooner.
            const raw = ws.raw as { terminate?: () => void } | undefined
            if (raw?.terminate) setTimeout(() => raw.terminate!(), SLOW_CONSUMER_GRACE_MS).unref?.()
            return
          }
          ws.send(eventsFrame(events))
          if (req.runId !== undefined && events.some(endsRun)) {
            closing = true
            cleanup(ws)
            ws.close(CLOSE.NORMAL, 'run finished')
          }
        })
        send(ws, { type: 'hello', protocol: PROTOCOL_VERSION, stream: req.runId ? 'run' : 'feed', run_id: req.runId, after: req.after, heartbeatMs: this.opts.heartbeatMs })
        heartbeat = setInterval(() => send(ws, { type: 'heartbeat', at: new Date().toISOString() }), this.opts.heartbeatMs)
        armExpiry(ws, req.expiresAt)
        const gate = session.gate
        gate.replay(this.load(req), REPLAY_PAGE).then(
          () => { if (!closing) send(ws, { type: 'caught_up', position: gate.lastPosition }) },
          () => { closing = true; cleanup(ws); ws.close(CLOSE.TRY_AGAIN_LATER, 'history unavailable') },
        )
      },
      onMessage: async (evt, ws) => {
        const msg = parseClientMessage(evt.data)
        if (!msg) return send(ws, { type: 'error', code: 'bad_message', message: 'unknown or malformed message' })
        if (msg.type === 'ping') return send(ws, { type: 'pong', at: new Date().toISOString() })
        if (msg.type === 'refresh_token') {
          const refreshed = req.refresh ? await req.refresh(msg.token) : null
          if (!refreshed) return send(ws, { type: 'error', code: 'invalid_token', message: 'token refused' })
          armExpiry(ws, refreshed.expiresAt)
          send(ws, { type: 'token_refreshed', expiresAt: new Date(refreshed.expiresAt).toISOString() })
        }
      },
      onClose: (_evt, ws) => cleanup(ws),
      onError: (_evt, ws) => cleanup(ws),
    }))
    return Promise.resolve(handler(c, async () => {})).then((res) => res ?? c.json({ error: { code: 'upgrade_required', message: 'use a WebSocket, or Accept: text/event-stream', details: [] } }, 426))
  }

  private sse(c: Context, req: StreamRequest): Response {
    return streamSSE(c, async (stream) => {
      let pending = 0
      let finished = false
      let resolveDone!: () => void
      const done = new Promise<void>((r) => (resolveDone = r))
      const end = () => { finished = true; resolveDone() }
      let chain: Promise<unknown> = Promise.resolve()
      const write = (fn: () => Promise<unknown>) => {
        pending++
        chain = chain.then(fn).catch(end).finally(() => pending--)
        return chain
      }
      const session = this.subscribe(req, (events) => {
        if (finished) return
        if (pending > this.opts.maxPendingWrites) {
          write(() => stream.writeSSE({ event: 'error', data: JSON.stringify({ code: 'slow_consumer', message: 'reconnect with Last-Event-ID' }) }))
          return end()
        }
        for (const e of events) write(() => stream.writeSSE({ id: String(req.runId ? e.seq : e.id), event: e.type, data: eventToJson(e) }))
        if (req.runId !== undefined && events.some(endsRun)) write(async () => end())
      })
      this.sseClosers.add(end)
      stream.onAbort(end)
      const heartbeat = setInterval(() => write(() => stream.write(': heartbeat\n\n')), this.opts.heartbeatMs)
      const expiry = req.expiresAt !== undefined ? setTimeout(end, Math.max(0, req.expiresAt - Date.now())) : undefined
      try {
        await write(() => stream.write(`retry: 1000\n\n`))
        await session.gate.replay(this.load(req), REPLAY_PAGE)
        await done
        await chain
      } finally {
        session.unsubscribe()
        clearInterval(heartbeat)
        clearTimeout(expiry)
        this.sseClosers.delete(end)
      }
    })
  }

  get openSockets(): number { return this.sockets.size }

  /** Close every stream with 1012 (service restart): clients reconnect with `after`. */
  closeAll(): void {
    for (const ws of this.sockets) ws.close(CLOSE.SERVICE_RESTART, 'server restarting')
    this.sockets.clear()
    for (const end of this.sseClosers) end()
  }
}
