import type { Context } from 'hono'
import * as z from 'zod'
import { sha256Hex } from '../../core/crypto.ts'
import { selectSubprotocol } from '../../core/protocol.ts'
import type { HeldOut, TokenRef } from '../../core/held-streams.ts'
import { answerClientMessage as answer, SseWriter } from '../../core/stream-session.ts'
import type { Principal, TokenScope, TokenVerifier } from '../../http/auth.ts'
import type { StreamRequest, Streams } from '../../http/hosts.ts'
import type { Env } from './env.ts'
import { getShared } from './shared.ts'

/** Header carrying a stream's parameters from the Worker to the Durable Object that serves it. */
export const STREAM_HEADER = 'x-runrelay-stream'
/** Clients that send exactly this get PONG from the runtime without waking the object. */
export const PING = '{"type":"ping"}'

const FeedFilterSchema = z.object({
  runIds: z.array(z.string()).optional(),
  workflowIds: z.array(z.string()).optional(),
  statuses: z.array(z.string()).optional(),
  tags: z.array(z.string()).optional(),
})
export const StreamParams = z.object({
  tenantId: z.string(),
  transport: z.enum(['ws', 'sse']),
  after: z.number().int(),
  runId: z.string().optional(),
  filter: FeedFilterSchema.optional(),
  expiresAt: z.number().optional(),
  /** A run stream of a run that had finished when it was opened (StreamRequest.finished). */
  finished: z.boolean().optional(),
  /**
   * For a stream opened with a subscriber token: the digest of the token's tenant and scope
   * (tokenScopeKey). A refresh over the socket must carry a token with the same digest.
   */
  scopeKey: z.string().optional(),
  /** For a subscriber-token stream: which token (core TokenRef), so the object can tell when it is revoked. */
  token: z.object({ tenantId: z.string(), tokenId: z.string(), keyId: z.string().optional(), mintedAt: z.number() }).optional(),
  /** Set when the Worker routes a run WebSocket straight to shard k of the run (RUNRELAY_RUN_SHARD_AFTER=0). */
  shard: z.number().int().min(0).optional(),
})
export type StreamParams = z.infer<typeof StreamParams>

/** A verified token's TokenRef. */
export const tokenRef = (p: Extract<Principal, { kind: 'token' }>): TokenRef => ({ tenantId: p.tenantId, tokenId: p.tokenId, keyId: p.keyId, mintedAt: p.mintedAt })

/** Parse the parameters the Worker attached to a stream request (never trusted blindly). */
export function streamParams(request: Request): StreamParams | null {
  try {
    const r = StreamParams.safeParse(JSON.parse(request.headers.get(STREAM_HEADER) ?? 'null'))
    return r.success ? r.data : null
  } catch {
    return null
  }
}

/** The 101 answer of an accepted WebSocket, with the selected subprotocol. */
export function upgraded(request: Request, client: WebSocket): Response {
  const protocol = selectSubprotocol(request.headers.get('sec-websocket-protocol'))
  return new Response(null, { status: 101, webSocket: client, headers: protocol ? { 'sec-websocket-protocol': protocol } : undefined })
}

/**
 * A compact digest of a subscriber token's tenant and (normalized) scope. Socket attachments
 * are limited to 2 KiB, and a scope may list a hundred runs: the digest is what they keep.
 */
export function tokenScopeKey(tenantId: string, scope: TokenScope): Promise<string> {
  return sha256Hex(JSON.stringify([tenantId, scope]))
}

/**
 * A `refresh_token` over an open socket, as on Node: the new token must verify and be for the
 * same tenant and the same scope as the one that opened the stream. Returns it.
 */
export async function refreshedToken(tokens: TokenVerifier, scopeKey: string | undefined, token: string): Promise<Extract<Principal, { kind: 'token' }> | null> {
  if (scopeKey === undefined) return null // opened with an API key: nothing to refresh
  const next = await tokens.verify(token)
  if (!next || (await tokenScopeKey(next.tenantId, next.scope)) !== scopeKey) return null
  return next
}

/** How an object takes a refreshed token for one socket. */
export interface SocketRefresh {
  tokens: () => Promise<TokenVerifier>
  /** The socket's scope digest (undefined: opened with an API key). */
  scopeKey: () => string | undefined
  /** Store the new expiry and token (revocation is checked against it from now on); false when the socket is gone. */
  apply: (expiresAt: number, token: TokenRef) => Promise<boolean>
}

/**
 * A client's message on an object's socket, the same for runs and the feed (the core's
 * answerClientMessage): `refresh_token` is verified (refreshedToken) and applied.
 */
export function answerClientMessage(ws: WebSocket, message: string | ArrayBuffer, refresh: SocketRefresh): Promise<void> {
  let next: TokenRef | undefined
  return answer(message, {
    send: (text) => void trySend(ws, text),
    close: (code, reason) => tryClose(ws, code, reason),
    refresh: async (token) => {
      const p = await refreshedToken(await refresh.tokens(), refresh.scopeKey(), token)
      next = p ? tokenRef(p) : undefined
      return p ? p.expiresAt : null
    },
    apply: (expiresAt) => refresh.apply(expiresAt, next!),
  }, true)
}

/** A run stream goes to the run's object; the feed to the tenant's feed object. */
export class WorkersStreams implements Streams {
  constructor(private readonly env: Env) {}

  async open(c: Context, req: StreamRequest): Promise<Response> {
    // The token's refresh callback cannot cross into the object: it gets the scope's digest and
    // verifies refreshed tokens itself.
    const principal = c.get('principal') as Principal | undefined
    const token = principal?.kind === 'token' ? principal : undefined
    const scopeKey = token ? await tokenScopeKey(token.tenantId, token.scope) : undefined
    const params: StreamParams = {
      tenantId: req.tenantId, transport: req.transport, after: req.after, runId: req.runId,
      filter: req.filter as StreamParams['filter'], expiresAt: req.expiresAt, finished: req.finished, scopeKey,
      token: token ? tokenRef(token) : undefined,
    }
    const headers = new Headers()
    for (const h of ['upgrade', 'connection', 'sec-websocket-key', 'sec-websocket-version', 'sec-websocket-protocol', 'sec-websocket-extensions']) {
      const v = c.req.header(h)
      if (v !== undefined) headers.set(h, v)
    }
    // All of a hot run's WebSocket subscribers on shards: straight there (a random shard per
    // subscriber), so a connect storm does not pass through the one run object.
    const { config } = await getShared(this.env)
    if (req.runId !== undefined && req.transport === 'ws' && config.RUNRELAY_RUN_SHARDS > 0 && config.RUNRELAY_RUN_SHARD_AFTER === 0) {
      const shard = Math.floor(Math.random() * config.RUNRELAY_RUN_SHARDS)
      headers.set(STREAM_HEADER, JSON.stringify({ ...params, shard } satisfies StreamParams))
      return this.env.RUN_SHARDS.get(this.env.RUN_SHARDS.idFromName(runShardName(req.runId, shard))).fetch(new Request('https://runrelay.internal/stream', { headers }))
    }
    headers.set(STREAM_HEADER, JSON.stringify(params))
    const request = new Request('https://runrelay.internal/stream', { headers })
    if (req.runId === undefined) return this.env.FEEDS.get(this.env.FEEDS.idFromName(req.tenantId)).fetch(request)
    return this.env.RUNS.get(this.env.RUNS.idFromName(req.runId)).fetch(request)
  }
}

/** The name of shard k of a run's socket holders (RunShardObject). */
export function runShardName(runId: string, k: number): string {
  return `${runId}:${k}`
}

/** Send without throwing: a socket closing under us is not an error of the sender. */
export function trySend(ws: WebSocket, data: string): boolean {
  try {
    ws.send(data)
    return true
  } catch {
    return false
  }
}

export function tryClose(ws: WebSocket, code: number, reason: string): void {
  try { ws.close(code, reason) } catch { /* already closed */ }
}

/** A Durable Object's WebSockets as the core's held streams' output: bytes only, never a throw. */
export const WS_OUT: HeldOut<WebSocket> = { send: trySend, close: tryClose }

/**
 * An SSE response whose body is written later (from alarms and publishes, with no Hono context):
 * the core's SseWriter over a TransformStream. `ended` runs once the response is over (ended by
 * the writer, or the client went away).
 */
export function sseResponse(ended: () => void): { socket: SseWriter; response: Response } {
  const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>()
  const writer = writable.getWriter()
  const encoder = new TextEncoder()
  const socket = new SseWriter({
    write: (text) => writer.write(encoder.encode(text)),
    end: () => { writer.close().catch(() => {}); ended() },
    fail: (reason) => { writer.abort(reason).catch(() => {}) },
  })
  const response = new Response(readable, {
    headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' },
  })
  return { socket, response }
}


/**
 * Per-socket attachments of a hibernating object, deserialised once per instance: the cache
 * every socket-holding object (run, shard, feed) keeps in front of serialize/deserializeAttachment.
 */
export class SocketAttachments<T> {
  private readonly cache = new Map<WebSocket, T>()

  /** The socket's attachment, or null when it has none (or the socket is gone). */
  get(ws: WebSocket): T | null {
    let a = this.cache.get(ws)
    if (a === undefined) {
      try { a = (ws.deserializeAttachment() as T | null) ?? undefined } catch { a = undefined }
      if (a === undefined) return null
      this.cache.set(ws, a)
    }
    return a
  }

  /** Store it with the socket (it survives hibernation) and in the cache. */
  set(ws: WebSocket, att: T): void {
    try { ws.serializeAttachment(att) } catch { return } // closed
    this.cache.set(ws, att)
  }

  delete(ws: WebSocket): void { this.cache.delete(ws) }
}
