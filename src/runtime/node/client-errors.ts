import { STATUS_CODES } from 'node:http'
import type { Duplex } from 'node:stream'
import { MAX_URL_BYTES } from '../../http/app.ts'
import { errorBody } from '../../http/errors.ts'

const CODES: Record<number, string> = { 400: 'malformed_request', 408: 'request_timeout', 413: 'payload_too_large', 414: 'uri_too_long', 431: 'headers_too_large' }
const MESSAGES: Record<number, string> = {
  400: 'malformed HTTP request', 408: 'the request took too long to arrive', 413: 'chunk extensions are too large',
  414: `URL is longer than ${MAX_URL_BYTES / 1024} KiB`, 431: 'request headers are too large',
}

/** Whether a packet starts a request line that runs past MAX_URL_BYTES (method, space, then no line end in time). */
function startsLongRequestLine(packet: Buffer | undefined): boolean {
  if (!packet || !/^[A-Z]{3,10} \S/.test(packet.subarray(0, 16).toString('latin1'))) return false
  const eol = packet.indexOf('\r\n')
  return eol === -1 || eol > MAX_URL_BYTES
}

/**
 * The answer to a request Node's parser refuses (server 'clientError'), as Node's default
 * handler gives it but in runrelay's JSON error format, and with one change: a request line
 * past Node's 16 KiB header limit is the 414 the app gives any URL over 8 KiB, not Node's 431.
 */
export function answerClientError(err: Error & { code?: string; rawPacket?: Buffer }, socket: Duplex & { _httpMessage?: { headersSent?: boolean } | null }): void {
  // As Node's own handler: no answer when a response on this socket has already begun.
  if (err.code === 'ECONNRESET' || !socket.writable || socket._httpMessage?.headersSent) return void socket.destroy()
  let status = err.code === 'HPE_HEADER_OVERFLOW' ? 431
    : err.code === 'HPE_CHUNK_EXTENSIONS_OVERFLOW' ? 413
    : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408
    : 400
  if (status === 431 && startsLongRequestLine(err.rawPacket)) status = 414
  const body = JSON.stringify(errorBody(CODES[status]!, MESSAGES[status]!))
  socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`)
}
