import * as z from 'zod'
import { RunEvent } from './domain.ts'
import { jsonTooDeep } from './json.ts'

/**
 * The WebSocket protocol: the contract. Every message is JSON with a string-literal `type`;
 * parse with `ServerMessage.safeParse` / `ClientMessage.safeParse`. The zod-free client SDK
 * mirrors it in packages/client/src/protocol.ts; test/packages/protocol.test.ts keeps the two equal.
 */
export const PROTOCOL_VERSION = 1

/** The WebSocket subprotocol runrelay speaks (clients offer it next to `runrelay.token.<t>`). */
export const SUBPROTOCOL = 'runrelay.v1'

/**
 * The subprotocol a 101 selects: runrelay.v1 when offered, else the first offered (as Node's
 * `ws` does), else none. Browsers drop a connection whose offered subprotocols get no answer.
 */
export function selectSubprotocol(offered: string | null | undefined): string | undefined {
  const list = (offered ?? '').split(',').map((s) => s.trim()).filter(Boolean)
  return list.includes(SUBPROTOCOL) ? SUBPROTOCOL : list[0]
}

/** Close codes the server uses; clients reconnect (resuming) on all but the 40xx refusals. */
export const CLOSE = {
  /** The run finished and every event was sent. */
  NORMAL: 1000,
  /** The server is restarting; reconnect with `after`. */
  SERVICE_RESTART: 1012,
  /** A client message was larger than MAX_CLIENT_FRAME_BYTES. */
  MESSAGE_TOO_BIG: 1009,
  TRY_AGAIN_LATER: 1013,
  UNAUTHORIZED: 4001,
  FORBIDDEN: 4003,
  NOT_FOUND: 4004,
  /** The client read too slowly and its buffer passed the limit; reconnect with `after`. */
  SLOW_CONSUMER: 4008,
  BAD_MESSAGE: 4400,
} as const

export const HelloMessage = z.object({
  type: z.literal('hello'),
  protocol: z.literal(PROTOCOL_VERSION),
  stream: z.enum(['run', 'feed']),
  run_id: z.string().optional(),
  /** The position the replay starts after: a seq for a run stream, an event id for the feed. */
  after: z.number().int(),
  heartbeatMs: z.number().int(),
}).describe('The first frame: which stream, the position the replay starts after, the heartbeat interval.')

export const EventMessage = z.object({ type: z.literal('event'), event: RunEvent }).describe('One event.')
/** Several events in one frame, in order (sent when many arrive together). */
export const BatchMessage = z.object({ type: z.literal('batch'), events: z.array(RunEvent) }).describe('Several events in one frame, in order.')
/** Sent once the replay of missed events is done and live events follow. */
export const CaughtUpMessage = z.object({ type: z.literal('caught_up'), position: z.number().int() }).describe('The replay of missed events is done; live events follow.')
export const HeartbeatMessage = z.object({ type: z.literal('heartbeat'), at: z.string() }).describe('Every heartbeatMs; silence for about 2.5 times that means the connection is dead.')
export const PongMessage = z.object({ type: z.literal('pong'), at: z.string() }).describe('The answer to a ping.')
export const ErrorMessage = z.object({ type: z.literal('error'), code: z.string(), message: z.string() }).describe('A client message the server could not use.')
export const TokenRefreshedMessage = z.object({ type: z.literal('token_refreshed'), expiresAt: z.string() }).describe('The subscriber token was replaced; its new expiry.')

export const ServerMessage = z.discriminatedUnion('type', [
  HelloMessage, EventMessage, BatchMessage, CaughtUpMessage, HeartbeatMessage, PongMessage, ErrorMessage, TokenRefreshedMessage,
])
export type ServerMessage = z.infer<typeof ServerMessage>

export const PingMessage = z.object({ type: z.literal('ping') }).describe('Ask for a pong (a client-side liveness check).')
/** Replace the subscriber token of an open connection before it expires. */
export const RefreshTokenMessage = z.object({ type: z.literal('refresh_token'), token: z.string().min(1).max(4096) }).describe('Replace the subscriber token of an open connection before it expires.')
export const ClientMessage = z.discriminatedUnion('type', [PingMessage, RefreshTokenMessage])
export type ClientMessage = z.infer<typeof ClientMessage>

/** Parse a raw frame into a server message, or null when it is not one. */
export function parseServerMessage(data: unknown): ServerMessage | null {
  if (typeof data !== 'string') return null
  try {
    const r = ServerMessage.safeParse(JSON.parse(data))
    return r.success ? r.data : null
  } catch {
    return null
  }
}

/**
 * The largest frame a client may send (client messages are a few hundred bytes); a larger one
 * closes the socket with CLOSE.MESSAGE_TOO_BIG, on every runtime.
 */
export const MAX_CLIENT_FRAME_BYTES = 64 * 1024

/** Whether a client frame (text or binary) is larger than MAX_CLIENT_FRAME_BYTES. */
export function clientFrameTooBig(data: unknown): boolean {
  if (typeof data === 'string') {
    // UTF-8 takes 1 to 3 bytes per UTF-16 unit: encode only when the length cannot tell.
    if (data.length > MAX_CLIENT_FRAME_BYTES) return true
    return data.length * 3 > MAX_CLIENT_FRAME_BYTES && new TextEncoder().encode(data).byteLength > MAX_CLIENT_FRAME_BYTES
  }
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) return data.byteLength > MAX_CLIENT_FRAME_BYTES
  if (typeof Blob !== 'undefined' && data instanceof Blob) return data.size > MAX_CLIENT_FRAME_BYTES
  return false
}

/** What a client frame is: a message, or the error frame that answers it. */
export type ParsedClientMessage = { ok: true; message: ClientMessage } | { ok: false; error: z.infer<typeof ErrorMessage> }

const badMessage = { ok: false, error: { type: 'error', code: 'bad_message', message: 'unknown or malformed message' } } as const

/** Parse a client's frame: a known message, or `bad_message` / `json_too_deep` to answer. */
export function parseClientMessage(data: unknown): ParsedClientMessage {
  if (typeof data !== 'string' || data.length > 8192) return badMessage
  if (jsonTooDeep(data)) return { ok: false, error: { type: 'error', code: 'json_too_deep', message: 'message is nested too deep' } }
  try {
    const r = ClientMessage.safeParse(JSON.parse(data))
    return r.success ? { ok: true, message: r.data } : badMessage
  } catch {
    return badMessage
  }
}
