import { WriteConflictError } from '../core/ports.ts'

/**
 * One place that tells a database that cannot answer now (down, restarting, unreachable, locked,
 * too slow) from anything else. The API answers such faults with 503 `store_unavailable` and
 * Retry-After, /healthz reports the database down, /metrics counts them.
 */

/** libSQL / SQLite result codes of a database that cannot serve now (a retry later may succeed). */
const STORE_CODES = new Set([
  'SQLITE_BUSY', 'SQLITE_LOCKED', 'SQLITE_IOERR', 'SQLITE_CANTOPEN', 'SQLITE_PROTOCOL', 'SQLITE_FULL', 'SQLITE_INTERRUPT',
  // @libsql/client's own codes for the HTTP (Hrana) and WebSocket transports.
  'SERVER_ERROR', 'HRANA_PROTO_ERROR', 'HRANA_CLOSED_ERROR', 'HRANA_WEBSOCKET_ERROR', 'HRANA_HTTP_ERROR', 'HRANA_NETWORK_ERROR',
  'STREAM_EXPIRED', 'STREAM_CLOSED', 'CLIENT_HTTP_ERROR', 'CLIENT_CLOSED', 'NETWORK_ERROR', 'WEBSOCKET_ERROR',
  // Node's and undici's network codes (fetch under the HTTP client).
  'ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENETDOWN', 'EAI_AGAIN', 'ENOTFOUND',
  'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CLOSED',
])
const STORE_NAMES = new Set(['AbortError', 'TimeoutError', 'StoreTimeoutError'])
const STORE_MESSAGES = /fetch failed|socket hang up|network error|other side closed|connection (refused|reset|closed)|database is locked|disk I\/O error|unable to open database|timed? ?out/i

/** A store call that did not answer within RUNRELAY_STORE_TIMEOUT_MS (it may still commit later). */
export class StoreTimeoutError extends Error {
  override name = 'StoreTimeoutError'
}

/** Whether `err` (or any error in its cause chain: drizzle wraps the driver's) says the database cannot answer now. */
export function isStoreUnavailable(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    if (typeof e !== 'object') break
    const { code, name, message, rawCode } = e as { code?: unknown; name?: unknown; message?: unknown; rawCode?: unknown }
    if (typeof code === 'string' && (STORE_CODES.has(code) || STORE_CODES.has(code.split('_').slice(0, 2).join('_')))) return true
    if (typeof name === 'string' && STORE_NAMES.has(name)) return true
    // SQLite extended codes (SQLITE_IOERR_*: 10 | n << 8; BUSY 5, LOCKED 6, CANTOPEN 14).
    if (typeof rawCode === 'number' && [5, 6, 10, 14, 15].includes(rawCode & 0xff)) return true
    // drizzle's "Failed query" quotes the SQL and its values: judged by its cause, not its words.
    if (typeof message === 'string' && !message.startsWith('Failed query') && STORE_MESSAGES.test(message)) return true
  }
  return false
}

/**
 * Run `fn`, retrying while it fails with a store fault (backoff from 100 ms to 2 s) until
 * `withinMs` has passed: start-up steps ride out a database that is slow or restarting
 * (several processes starting at once on one server) instead of exiting.
 */
export async function retryStoreFaults<T>(fn: () => Promise<T>, withinMs: number, onRetry: (err: unknown) => void = () => {}): Promise<T> {
  const deadline = Date.now() + withinMs
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn()
    } catch (err) {
      if (!isStoreUnavailable(err) || Date.now() >= deadline) throw err
      onRetry(err)
      await new Promise((r) => setTimeout(r, Math.min(2_000, 100 * 2 ** attempt) * (0.5 + Math.random())))
    }
  }
}

/** Thrown when an append races another writer of the same run (seq already taken). */
export class SeqConflictError extends WriteConflictError {
  constructor(runId: string) { super(`events of run ${runId} were appended concurrently`) }
}
