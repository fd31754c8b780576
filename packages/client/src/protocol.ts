/**
 * The runrelay wire protocol as plain TypeScript types, with no runtime dependency. The
 * server's zod schemas (`src/core/protocol.ts`) are the contract; `test/packages/protocol.test.ts`
 * checks these types against them at the type level and with real frames, so they cannot drift.
 */

/** Every status a run can have. */
export type RunStatus = 'scheduled' | 'queued' | 'running' | 'paused' | 'completed' | 'failed' | 'canceled' | 'timed_out'
/** Statuses after which nothing changes. */
export const TERMINAL_STATUSES: readonly RunStatus[] = ['completed', 'failed', 'canceled', 'timed_out']
/** Whether a status ends a run. */
export const isTerminal = (status: RunStatus): boolean => TERMINAL_STATUSES.includes(status)

export type EventType = 'run.created' | 'run.status_changed' | 'run.progress' | 'run.output' | 'run.error' | 'run.command'

/** One event: `seq` orders a run (1, 2, 3 …), `id` orders the tenant feed; `status` is the run's once it is applied. */
export interface RunEvent {
  id: number
  run_id: string
  seq: number
  type: EventType
  at: string
  workflow_id: string
  status: RunStatus
  tags: string[]
  data: Record<string, unknown>
}

export const PROTOCOL_VERSION = 1
/** The WebSocket subprotocol runrelay speaks. */
export const SUBPROTOCOL = 'runrelay.v1'

/** Close codes the server uses; clients reconnect (resuming) on all but the 40xx refusals. */
export const CLOSE = {
  NORMAL: 1000,
  SERVICE_RESTART: 1012,
  MESSAGE_TOO_BIG: 1009,
  TRY_AGAIN_LATER: 1013,
  UNAUTHORIZED: 4001,
  FORBIDDEN: 4003,
  NOT_FOUND: 4004,
  SLOW_CONSUMER: 4008,
  BAD_MESSAGE: 4400,
} as const

export interface HelloMessage { type: 'hello'; protocol: 1; stream: 'run' | 'feed'; run_id?: string; after: number; heartbeatMs: number }
export interface EventMessage { type: 'event'; event: RunEvent }
export interface BatchMessage { type: 'batch'; events: RunEvent[] }
export interface CaughtUpMessage { type: 'caught_up'; position: number }
export interface HeartbeatMessage { type: 'heartbeat'; at: string }
export interface PongMessage { type: 'pong'; at: string }
export interface ErrorMessage { type: 'error'; code: string; message: string }
export interface TokenRefreshedMessage { type: 'token_refreshed'; expiresAt: string }

export type ServerMessage =
  | HelloMessage | EventMessage | BatchMessage | CaughtUpMessage | HeartbeatMessage | PongMessage | ErrorMessage | TokenRefreshedMessage

export interface PingMessage { type: 'ping' }
export interface RefreshTokenMessage { type: 'refresh_token'; token: string }
export type ClientMessage = PingMessage | RefreshTokenMessage

const isObj = (v: unknown): v is Record<string, any> => typeof v === 'object' && v !== null && !Array.isArray(v)
const isInt = (v: unknown): v is number => Number.isInteger(v)
const str = (v: unknown): v is string => typeof v === 'string'
const STATUSES = ['scheduled', 'queued', 'running', 'paused', 'completed', 'failed', 'canceled', 'timed_out']

/** Whether a value has the shape of an event (the fields the SDK relies on). */
export function isRunEvent(v: unknown): v is RunEvent {
  return isObj(v) && isInt(v.id) && isInt(v.seq) && v.seq > 0 && str(v.run_id) && str(v.type) && v.type.startsWith('run.') && str(v.at) &&
    str(v.workflow_id) && STATUSES.includes(v.status) && Array.isArray(v.tags) && isObj(v.data)
}

/** Parse a raw frame into a server message, or null when it is not one the SDK understands. */
export function parseServerMessage(data: unknown): ServerMessage | null {
  if (!str(data)) return null
  let m: unknown
  try { m = JSON.parse(data) } catch { return null }
  if (!isObj(m)) return null
  switch (m.type) {
    case 'hello': return m.protocol === PROTOCOL_VERSION && isInt(m.after) && isInt(m.heartbeatMs) && (m.stream === 'run' || m.stream === 'feed') ? m as HelloMessage : null
    case 'event': return isRunEvent(m.event) ? m as EventMessage : null
    case 'batch': return Array.isArray(m.events) && m.events.every(isRunEvent) ? m as BatchMessage : null
    case 'caught_up': return isInt(m.position) ? m as CaughtUpMessage : null
    case 'heartbeat': case 'pong': return str(m.at) ? m as HeartbeatMessage | PongMessage : null
    case 'error': return str(m.code) && str(m.message) ? m as ErrorMessage : null
    case 'token_refreshed': return str(m.expiresAt) ? m as TokenRefreshedMessage : null
    default: return null
  }
}

/** Whether this event ends its run (a terminal status change). */
export function endsRun(e: RunEvent): boolean {
  return e.type === 'run.status_changed' && isTerminal(e.status)
}
