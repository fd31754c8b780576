/**
 * Development libSQL remote server: Hrana over HTTP (JSON encoding) in front of a
 * real embedded libSQL database. `npm run dev:worker` runs it (CLI at the end of this
 * file) when LIBSQL_URL is not set; the tests start it in-process.
 *
 * Why this exists: on Workers runrelay talks to libSQL through
 * `@libsql/client/web` (Turso / sqld in production). sqld cannot be installed
 * here, so this server speaks the same wire protocol the web client speaks and
 * executes every statement on the real libSQL engine (the native `libsql`
 * package that `@libsql/client` itself uses for `file:` URLs). There is no SQL
 * imitation in JavaScript: parsing, typing, constraints, transactions and
 * locking are all SQLite/libSQL.
 *
 * Protocol surface (see tursodatabase/libsql docs/HRANA_3_SPEC.md):
 *   GET  /v2, /v3                    -> 200 (version probes; JSON encoding only)
 *   GET  /v3-protobuf                -> 404 (protobuf is not implemented, so a
 *                                       v3-probing client falls back to JSON)
 *   POST /v2/pipeline, /v3/pipeline  -> PipelineReqBody / PipelineRespBody
 *   POST /v3/cursor                  -> CursorReqBody, newline-delimited entries
 *   GET  /health, /version
 * Stream requests: execute, batch (conditions ok/error/not/and/or/
 * is_autocommit), sequence, describe, store_sql, close_sql, get_autocommit,
 * close.
 *
 * @libsql/client 0.18 (`@libsql/client/web`) calls `openHttp()` with protocol
 * version 2, so in practice it never probes and always posts JSON to
 * `/v2/pipeline`; it uses store_sql/close_sql (its SQL cache) in batches and
 * transactions, execute, batch with ok/not conditions, sequence, and close.
 *
 * Streams: every baton-less pipeline opens a new stream = a new libSQL
 * connection to the same database file. The response carries a fresh,
 * unpredictable baton; the next request on the stream must present exactly that
 * baton (an old or unknown baton gets HTTP 400, like sqld). A `close` request or
 * `streamIdleTimeoutMs` of inactivity closes the connection, which rolls back an
 * open transaction. `client.transaction()` therefore runs on one connection.
 *
 * Concurrency: each stream is its own SQLite connection on a WAL database, so a
 * writer on one stream makes writers on other streams hit SQLITE_BUSY. The
 * native calls are synchronous, so instead of a SQLite busy_timeout (which would
 * block the event loop and deadlock against the very stream holding the lock) a
 * statement that fails with SQLITE_BUSY is retried asynchronously for up to
 * `busyTimeoutMs`, roughly what sqld's write lock queueing looks like to a
 * client.
 *
 * Outage switch: `setFailing(true)` answers every request with HTTP 503
 * (text/plain) and drops all open streams (rolling back their transactions), as
 * a restarted server would. `setFailing(false)` restores service.
 *
 * `:memory:` (or no dbUrl) uses a fresh temporary database FILE that is deleted
 * on close(): an in-memory SQLite database exists only on the connection that
 * opened it, and the server needs one connection per stream.
 */
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'

// ---------------------------------------------------------------------------
// libSQL engine (native `libsql` package, resolved the way @libsql/client
// resolves it, so we always load the same engine the client ships with).
// ---------------------------------------------------------------------------

interface NativeColumn {
  name: string
  type: string | null
}
interface NativeStatement {
  readonly reader: boolean
  raw(on?: boolean): NativeStatement
  safeIntegers(on?: boolean): NativeStatement
  columns(): NativeColumn[]
  all(params: unknown[]): unknown[][]
  run(params: unknown[]): { changes: number; lastInsertRowid: number | bigint }
}
interface NativeDatabase {
  readonly open: boolean
  readonly inTransaction: boolean
  prepare(sql: string): NativeStatement
  exec(sql: string): void
  close(): void
}
interface NativeSqliteError extends Error {
  code?: string
  rawCode?: number
}
type NativeDatabaseCtor = new (path: string, opts?: Record<string, unknown>) => NativeDatabase

function loadLibsql(): NativeDatabaseCtor {
  const here = createRequire(import.meta.url)
  const clientEntry = here.resolve('@libsql/client')
  return createRequire(clientEntry)('libsql') as NativeDatabaseCtor
}

// ---------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------

export interface LibsqlHttpServerOptions {
  /** `file:` URL or plain path of the database; `:memory:`/undefined = temp file. */
  dbUrl?: string
  /** If set, every request must carry `Authorization: Bearer <authToken>`. */
  authToken?: string
  /** Close streams idle for this long (rolls back). Default 10 000 ms. */
  streamIdleTimeoutMs?: number
  /** How long a statement keeps retrying on SQLITE_BUSY. Default 5 000 ms. */
  busyTimeoutMs?: number
  /**
   * Expose `POST /__test/failing?on=1|0` (and `GET /__test/stats`) so code that
   * cannot call setFailing() directly — e.g. tests running inside workerd — can
   * flip the outage switch. Not part of the libSQL protocol. Default false.
   */
  controlEndpoints?: boolean
  /** Loopback port to listen on. Default 0 (any free port). */
  port?: number
}

export interface LibsqlHttpServer {
  /** `http://127.0.0.1:<port>` — pass to `createClient({ url })`. */
  url: string
  /** Filesystem path of the underlying database file. */
  dbPath: string
  close(): Promise<void>
  /** While on, every request is answered with HTTP 503 and open streams are dropped. */
  setFailing(on: boolean): void
  /** Number of HTTP requests received so far (including failed/rejected ones). */
  requestCount(): number
  /** Number of currently open Hrana streams (i.e. live connections/batons). */
  openStreamCount(): number
}

/** Start the Hrana-over-HTTP server on 127.0.0.1 in front of the database file `dbUrl`. */
export async function startLibsqlHttpServer(options: LibsqlHttpServerOptions = {}): Promise<LibsqlHttpServer> {
  const Database = loadLibsql()
  const { dbPath, tempDir } = resolveDbPath(options.dbUrl)
  const idleMs = options.streamIdleTimeoutMs ?? 10_000
  const busyMs = options.busyTimeoutMs ?? 5_000

  // Open once up front: fail fast on a bad path, and switch the file to WAL so
  // readers on one stream are not blocked by a writer on another.
  const probe = new Database(dbPath)
  probe.prepare('PRAGMA journal_mode=WAL').raw(true).all([])
  probe.close()

  const streams = new Map<string, Stream>()
  let requests = 0
  let failing = false

  const openStream = (): Stream => {
    const id = randomBytes(8).toString('hex')
    const stream: Stream = {
      id,
      baton: '',
      conn: new Database(dbPath),
      sqls: new Map(),
      closed: false,
      timer: undefined,
      tail: Promise.resolve(),
      reopen: () => new Database(dbPath),
    }
    streams.set(id, stream)
    return stream
  }
  const closeStream = (stream: Stream): void => {
    if (stream.closed) return
    stream.closed = true
    if (stream.timer) clearTimeout(stream.timer)
    streams.delete(stream.id)
    releaseConnection(stream.conn)
  }
  const touch = (stream: Stream): void => {
    if (stream.timer) clearTimeout(stream.timer)
    stream.timer = setTimeout(() => closeStream(stream), idleMs)
    stream.timer.unref()
  }
  const newBaton = (stream: Stream): string => {
    stream.baton = `${stream.id}.${randomBytes(12).toString('base64url')}`
    return stream.baton
  }
  const findStream = (baton: string): Stream | undefined => {
    const stream = streams.get(baton.split('.')[0] ?? '')
    return stream && stream.baton === baton && !stream.closed ? stream : undefined
  }

  const ctx: ExecCtx = { busyMs }

  const server = http.createServer((req, res) => {
    requests++
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) sendJson(res, 500, { message: `internal test-server error: ${String(err)}`, code: 'INTERNAL' })
      else res.destroy()
    })
  })

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const body = await readBody(req)
    const url = new URL(req.url ?? '/', 'http://localhost')
    if (options.controlEndpoints && url.pathname.startsWith('/__test/')) return control(req, url, res)
    if (failing) {
      res.writeHead(503, { 'content-type': 'text/plain' })
      res.end('libsql test server: simulated outage')
      return
    }
    if (options.authToken !== undefined && req.headers.authorization !== `Bearer ${options.authToken}`) {
      sendJson(res, 401, { message: 'Unauthorized: missing or invalid bearer token', code: 'UNAUTHORIZED' })
      return
    }
    const route = `${req.method} ${url.pathname.replace(/\/+$/, '') || '/'}`
    switch (route) {
      case 'GET /':
      case 'GET /health':
        return sendText(res, 200, '')
      case 'GET /version':
        return sendText(res, 200, 'runrelay-libsql-test-server')
      case 'GET /v2':
      case 'GET /v3':
        return sendText(res, 200, '')
      case 'POST /v2/pipeline':
      case 'POST /v3/pipeline':
        return pipeline(body, res)
      case 'POST /v3/cursor':
        return cursor(body, res)
      default:
        return sendText(res, 404, `not found: ${route}`)
    }
  }

  function control(req: http.IncomingMessage, url: URL, res: http.ServerResponse): void {
    if (req.method === 'POST' && url.pathname === '/__test/failing') {
      handle_.setFailing(url.searchParams.get('on') === '1' || url.searchParams.get('on') === 'true')
      return sendJson(res, 200, { failing })
    }
    if (req.method === 'GET' && url.pathname === '/__test/stats') {
      return sendJson(res, 200, { failing, requests, openStreams: streams.size })
    }
    sendText(res, 404, 'unknown control endpoint')
  }

  /** Resolves the baton to a stream (or opens one). Sends the HTTP error itself and returns undefined on failure. */
  function streamFor(baton: unknown, res: http.ServerResponse): Stream | undefined {
    if (baton === null || baton === undefined) return openStream()
    const stream = typeof baton === 'string' ? findStream(baton) : undefined
    if (!stream) {
      sendJson(res, 400, { message: 'The stream has expired or the baton is invalid', code: 'STREAM_EXPIRED' })
    }
    return stream
  }

  async function pipeline(body: string, res: http.ServerResponse): Promise<void> {
    const parsed = parseJson(body)
    if (!isObject(parsed) || !Array.isArray(parsed.requests)) {
      return sendJson(res, 400, { message: 'Invalid pipeline request body', code: 'PROTO_ERROR' })
    }
    const stream = streamFor(parsed.baton, res)
    if (!stream) return
    if (stream.timer) clearTimeout(stream.timer)
    const requestsList = parsed.requests as unknown[]
    const results = await serialized(stream, async () => {
      const out: unknown[] = []
      for (const request of requestsList) {
        if (stream.closed) {
          out.push({ type: 'error', error: { message: 'The stream is closed', code: 'STREAM_CLOSED' } })
          continue
        }
        out.push(await streamRequest(stream, request))
      }
      return out
    })
    const baton = stream.closed ? null : newBaton(stream)
    if (!stream.closed) touch(stream)
    sendJson(res, 200, { baton, base_url: null, results })
  }

  async function cursor(body: string, res: http.ServerResponse): Promise<void> {
    const parsed = parseJson(body)
    if (!isObject(parsed) || !isObject(parsed.batch)) {
      return sendJson(res, 400, { message: 'Invalid cursor request body', code: 'PROTO_ERROR' })
    }
    const stream = streamFor(parsed.baton, res)
    if (!stream) return
    if (stream.timer) clearTimeout(stream.timer)
    const lines = await serialized(stream, async () => {
      const entries: unknown[] = []
      try {
        const result = await runBatch(ctx, stream, parsed.batch as Json)
        result.step_results.forEach((step, i) => {
          const error = result.step_errors[i]
          if (error) entries.push({ type: 'step_error', step: i, error })
          else if (step) {
            entries.push({ type: 'step_begin', step: i, cols: step.cols })
            for (const row of step.rows) entries.push({ type: 'row', row })
            entries.push({ type: 'step_end', affected_row_count: step.affected_row_count, last_insert_rowid: step.last_insert_rowid })
          }
        })
      } catch (err) {
        entries.push({ type: 'error', error: toHranaError(err) })
      }
      return entries
    })
    const baton = stream.closed ? null : newBaton(stream)
    if (!stream.closed) touch(stream)
    res.writeHead(200, { 'content-type': 'text/plain' })
    res.end([{ baton, base_url: null }, ...lines].map((l) => JSON.stringify(l)).join('\n') + '\n')
  }

  async function streamRequest(stream: Stream, request: unknown): Promise<unknown> {
    if (!isObject(request)) return errorResult({ message: 'Stream request must be an object', code: 'PROTO_ERROR' })
    try {
      switch (request.type) {
        case 'close':
          closeStream(stream)
          return ok({ type: 'close' })
        case 'execute':
          return ok({ type: 'execute', result: await runStmtWithRetry(ctx, stream, request.stmt as Json) })
        case 'batch':
          return ok({ type: 'batch', result: await runBatch(ctx, stream, request.batch as Json) })
        case 'sequence':
          if (stream.closed) throw new ProtoError('The stream is closed', 'STREAM_CLOSED')
          stream.conn.exec(sqlOf(stream, request))
          return ok({ type: 'sequence' })
        case 'describe':
          return ok({ type: 'describe', result: describe(stream, sqlOf(stream, request)) })
        case 'store_sql': {
          const id = request.sql_id
          if (typeof id !== 'number' || typeof request.sql !== 'string') {
            return errorResult({ message: 'store_sql needs sql_id and sql', code: 'PROTO_ERROR' })
          }
          if (stream.sqls.has(id)) return errorResult({ message: `SQL text id ${id} is already in use`, code: 'SQL_ID_IN_USE' })
          stream.sqls.set(id, request.sql)
          return ok({ type: 'store_sql' })
        }
        case 'close_sql':
          stream.sqls.delete(request.sql_id as number)
          return ok({ type: 'close_sql' })
        case 'get_autocommit':
          if (stream.closed) throw new ProtoError('The stream is closed', 'STREAM_CLOSED')
          return ok({ type: 'get_autocommit', is_autocommit: !stream.conn.inTransaction })
        default:
          return errorResult({ message: `Unknown stream request type ${JSON.stringify(request.type)}`, code: 'PROTO_ERROR' })
      }
    } catch (err) {
      return errorResult(toHranaError(err))
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve())
  })
  const port = (server.address() as AddressInfo).port

  let closing: Promise<void> | undefined
  const handle_: LibsqlHttpServer = {
    url: `http://127.0.0.1:${port}`,
    dbPath,
    requestCount: () => requests,
    openStreamCount: () => streams.size,
    setFailing(on: boolean) {
      failing = on
      if (on) for (const stream of [...streams.values()]) closeStream(stream)
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        for (const stream of [...streams.values()]) closeStream(stream)
        server.close(() => resolve())
        server.closeAllConnections()
      }).then(() => {
        if (tempDir) fs.rmSync(tempDir, { recursive: true, force: true })
      })
      return closing
    },
  }
  return handle_
}

// ---------------------------------------------------------------------------
// Execution
// ---------------------------------------------------------------------------

type Json = Record<string, unknown>
interface Stream {
  id: string
  baton: string
  conn: NativeDatabase
  sqls: Map<number, string>
  closed: boolean
  timer: NodeJS.Timeout | undefined
  tail: Promise<unknown>
  reopen(): NativeDatabase
}
interface ExecCtx {
  busyMs: number
}
interface HranaError {
  message: string
  code: string
}
type HranaValue =
  | { type: 'null' }
  | { type: 'integer'; value: string }
  | { type: 'float'; value: number }
  | { type: 'text'; value: string }
  | { type: 'blob'; base64: string }
interface StmtResult {
  cols: { name: string | null; decltype: string | null }[]
  rows: HranaValue[][]
  affected_row_count: number
  last_insert_rowid: string | null
}
interface BatchResult {
  step_results: (StmtResult | null)[]
  step_errors: (HranaError | null)[]
}

/** Hrana requires requests on one stream to be processed in order. */
function serialized<T>(stream: Stream, fn: () => Promise<T>): Promise<T> {
  const run = stream.tail.then(fn, fn)
  stream.tail = run.catch(() => undefined)
  return run
}

class ProtoError extends Error {
  constructor(
    message: string,
    readonly code = 'PROTO_ERROR',
  ) {
    super(message)
  }
}

function sqlOf(stream: Stream, holder: Json): string {
  if (typeof holder.sql === 'string') return holder.sql
  if (typeof holder.sql_id === 'number') {
    const sql = stream.sqls.get(holder.sql_id)
    if (sql === undefined) throw new ProtoError(`SQL text with id ${holder.sql_id} was not found`, 'SQL_NOT_FOUND')
    return sql
  }
  throw new ProtoError('Exactly one of sql and sql_id must be given')
}

/**
 * Executes one statement, retrying on SQLITE_BUSY with the SAME prepared
 * statement (the SQLite idiom: a statement that returned BUSY stays active and
 * holds an implicit read transaction until it is stepped to completion, so
 * re-preparing would leave that transaction pinned on the connection).
 */
async function runStmtWithRetry(ctx: ExecCtx, stream: Stream, stmt: Json): Promise<StmtResult> {
  const attempt = prepareStmt(stream, stmt)
  const wasInTx = stream.conn.inTransaction
  const deadline = Date.now() + ctx.busyMs
  for (let delay = 2; ; delay = Math.min(delay * 2, 50)) {
    try {
      return attempt()
    } catch (err) {
      if (!isBusy(err)) throw err
      if (stream.closed) throw new ProtoError('The stream is closed', 'STREAM_CLOSED')
      if (Date.now() >= deadline) {
        // Giving up leaves the BUSY statement active (and its implicit
        // transaction open). Outside an explicit transaction nothing else lives
        // on the connection, so swap in a fresh one to release it.
        if (!wasInTx) replaceConnection(stream)
        throw err
      }
      await new Promise((r) => setTimeout(r, delay))
    }
  }
}

function replaceConnection(stream: Stream): void {
  releaseConnection(stream.conn)
  stream.conn = stream.reopen()
}

/**
 * Roll back explicitly before closing: the native connection is reference
 * counted by its prepared statements and only really closes once they are
 * garbage collected, so close() alone would keep an open write transaction
 * (and the database write lock) alive for an unpredictable time.
 */
function releaseConnection(conn: NativeDatabase): void {
  try {
    if (conn.open && conn.inTransaction) conn.exec('ROLLBACK')
  } catch {
    /* nothing useful to do */
  }
  try {
    if (conn.open) conn.close()
  } catch {
    /* nothing useful to do */
  }
}

function prepareStmt(stream: Stream, stmt: Json): () => StmtResult {
  // never touch a closed native connection: reading its state aborts the process
  if (stream.closed) throw new ProtoError('The stream is closed', 'STREAM_CLOSED')
  if (!isObject(stmt)) throw new ProtoError('stmt must be an object')
  const sql = sqlOf(stream, stmt)
  const args = Array.isArray(stmt.args) ? stmt.args.map(decodeValue) : []
  const named = Array.isArray(stmt.named_args) ? (stmt.named_args as Json[]) : []
  const params = named.length > 0 ? bindNamed(sql, args, named) : args
  const conn = stream.conn
  const prepared = conn.prepare(sql)
  prepared.safeIntegers(true)
  const reader = prepared.reader
  const cols: StmtResult['cols'] = reader
    ? prepared.raw(true).columns().map((c) => ({ name: c.name ?? null, decltype: c.type ?? null }))
    : []
  const before = counters(conn)

  return () => {
    let rows: unknown[][] = []
    if (reader) {
      rows = prepared.all(params)
    } else {
      try {
        prepared.run(params)
      } catch (err) {
        if ((err as NativeSqliteError).code === 'SQLITE_OK') {
          throw new ProtoError('SQL string does not contain any statement', 'SQL_NO_STATEMENT')
        }
        throw err
      }
    }
    const after = counters(conn)
    // total_changes() moves only if this statement inserted/updated/deleted rows;
    // changes() alone would report a stale count for SELECT/BEGIN/DDL.
    const changed = after.total !== before.total
    return {
      cols,
      rows: stmt.want_rows === false ? [] : rows.map((row) => row.map(encodeValue)),
      affected_row_count: changed ? Number(after.changes) : 0,
      last_insert_rowid: changed ? after.lastRowid.toString() : null,
    }
  }
}

function counters(conn: NativeDatabase): { changes: bigint; total: bigint; lastRowid: bigint } {
  const s = conn.prepare('SELECT changes(), total_changes(), last_insert_rowid()')
  s.safeIntegers(true)
  s.raw(true)
  const [changes, total, lastRowid] = s.all([])[0] as bigint[]
  return { changes: changes!, total: total!, lastRowid: lastRowid! }
}

async function runBatch(ctx: ExecCtx, stream: Stream, batch: Json): Promise<BatchResult> {
  if (!isObject(batch) || !Array.isArray(batch.steps)) throw new ProtoError('batch.steps must be an array')
  const steps = batch.steps as Json[]
  const result: BatchResult = { step_results: [], step_errors: [] }
  const evalCond = (cond: Json, current: number): boolean => {
    switch (cond.type) {
      case 'ok':
      case 'error': {
        const step = cond.step as number
        if (typeof step !== 'number' || step < 0 || step >= current) {
          throw new ProtoError(`Batch condition refers to step ${String(step)}, which does not precede step ${current}`)
        }
        return cond.type === 'ok' ? result.step_results[step] != null : result.step_errors[step] != null
      }
      case 'not':
        return !evalCond(cond.cond as Json, current)
      case 'and':
        return (cond.conds as Json[]).every((c) => evalCond(c, current))
      case 'or':
        return (cond.conds as Json[]).some((c) => evalCond(c, current))
      case 'is_autocommit':
        return !stream.conn.inTransaction
      default:
        throw new ProtoError(`Unknown batch condition ${JSON.stringify(cond.type)}`)
    }
  }
  for (let i = 0; i < steps.length; i++) {
    const step = steps[i]!
    if (stream.closed) throw new ProtoError('The stream is closed', 'STREAM_CLOSED')
    result.step_results.push(null)
    result.step_errors.push(null)
    if (step.condition != null && !evalCond(step.condition as Json, i)) continue
    try {
      result.step_results[i] = await runStmtWithRetry(ctx, stream, step.stmt as Json)
    } catch (err) {
      if (err instanceof ProtoError && (err.code === 'PROTO_ERROR' || err.code === 'STREAM_CLOSED')) throw err
      result.step_errors[i] = toHranaError(err)
    }
  }
  return result
}

function describe(stream: Stream, sql: string): unknown {
  const prepared = stream.conn.prepare(sql)
  const cols = prepared.reader ? prepared.columns().map((c) => ({ name: c.name, decltype: c.type ?? null })) : []
  const head = stripLeadingComments(sql).toUpperCase()
  const keyword = /^[A-Z]+/.exec(head)?.[0] ?? ''
  const isExplain = keyword === 'EXPLAIN'
  // Best effort: the native binding does not expose sqlite3_stmt_readonly.
  const isReadonly =
    isExplain ||
    keyword === 'SELECT' ||
    keyword === 'VALUES' ||
    (keyword === 'WITH' && !/\b(INSERT|UPDATE|DELETE|REPLACE)\b/.test(head))
  return {
    params: scanParams(sql).map((name) => ({ name })),
    cols,
    is_explain: isExplain,
    is_readonly: isReadonly,
  }
}

// ---------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------

/**
 * SQLite parameter numbering: `?` takes (largest index so far + 1), `?NNN`
 * takes NNN, a named parameter reuses its index or takes largest + 1.
 * Returns names by index-1 (null for `?`), skipping literals and comments.
 */
function scanParams(sql: string): (string | null)[] {
  const params: (string | null)[] = []
  const assign = (index: number, name: string | null) => {
    while (params.length < index) params.push(null)
    if (name !== null) params[index - 1] = name
  }
  let i = 0
  while (i < sql.length) {
    const ch = sql[i]!
    if (ch === "'" || ch === '"' || ch === '`') {
      i++
      while (i < sql.length) {
        if (sql[i] === ch) {
          if (sql[i + 1] === ch) i += 2
          else break
        } else i++
      }
      i++
    } else if (ch === '[') {
      i = sql.indexOf(']', i) === -1 ? sql.length : sql.indexOf(']', i) + 1
    } else if (ch === '-' && sql[i + 1] === '-') {
      i = sql.indexOf('\n', i) === -1 ? sql.length : sql.indexOf('\n', i) + 1
    } else if (ch === '/' && sql[i + 1] === '*') {
      i = sql.indexOf('*/', i + 2) === -1 ? sql.length : sql.indexOf('*/', i + 2) + 2
    } else if (ch === '?') {
      const digits = /^\d+/.exec(sql.slice(i + 1))?.[0]
      if (digits) {
        assign(Number(digits), `?${digits}`)
        i += 1 + digits.length
      } else {
        assign(params.length + 1, null)
        i++
      }
    } else if (ch === ':' || ch === '@' || ch === '$') {
      const ident = /^[A-Za-z0-9_]+/.exec(sql.slice(i + 1))?.[0]
      if (ident) {
        const name = ch + ident
        if (!params.includes(name)) assign(params.length + 1, name)
        i += 1 + ident.length
      } else i++
    } else i++
  }
  return params
}

/** Builds a positional argument array; named arguments take precedence over positional ones. */
function bindNamed(sql: string, args: unknown[], named: Json[]): unknown[] {
  const params = scanParams(sql)
  const bound: unknown[] = [...args]
  while (bound.length < params.length) bound.push(null)
  for (const arg of named) {
    const name = String(arg.name)
    const candidates = /^[:@$?]/.test(name) ? [name] : [':', '@', '$'].map((p) => p + name)
    const index = params.findIndex((p) => p !== null && candidates.includes(p))
    if (index === -1) throw new ProtoError(`Unknown named parameter ${JSON.stringify(name)}`, 'ARGS_INVALID')
    bound[index] = decodeValue(arg.value)
  }
  return bound
}

function stripLeadingComments(sql: string): string {
  let s = sql.trimStart()
  for (;;) {
    if (s.startsWith('--')) s = s.slice(s.indexOf('\n') === -1 ? s.length : s.indexOf('\n') + 1).trimStart()
    else if (s.startsWith('/*')) s = s.slice(s.indexOf('*/') === -1 ? s.length : s.indexOf('*/') + 2).trimStart()
    else return s
  }
}

// ---------------------------------------------------------------------------
// Values and errors
// ---------------------------------------------------------------------------

function decodeValue(v: unknown): null | bigint | number | string | Buffer {
  if (!isObject(v)) throw new ProtoError('Value must be an object')
  switch (v.type) {
    case 'null':
      return null
    case 'integer':
      if (typeof v.value !== 'string' || !/^-?\d+$/.test(v.value)) throw new ProtoError('integer value must be a decimal string')
      return BigInt(v.value)
    case 'float':
      if (typeof v.value !== 'number') throw new ProtoError('float value must be a number')
      return v.value
    case 'text':
      if (typeof v.value !== 'string') throw new ProtoError('text value must be a string')
      return v.value
    case 'blob':
      if (typeof v.base64 !== 'string') throw new ProtoError('blob value must carry base64')
      return Buffer.from(v.base64, 'base64')
    default:
      throw new ProtoError(`Unknown value type ${JSON.stringify(v.type)}`)
  }
}

function encodeValue(v: unknown): HranaValue {
  if (v === null || v === undefined) return { type: 'null' }
  if (typeof v === 'bigint') return { type: 'integer', value: v.toString() }
  // with safeIntegers(true) SQLite INTEGERs arrive as bigint, so a number is always a REAL
  if (typeof v === 'number') return { type: 'float', value: v }
  if (typeof v === 'string') return { type: 'text', value: v }
  if (v instanceof Uint8Array) return { type: 'blob', base64: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64') }
  throw new Error(`cannot encode value of type ${typeof v}`)
}

const SQLITE_BASE_CODES: Record<number, string> = {
  1: 'SQLITE_ERROR', 2: 'SQLITE_INTERNAL', 3: 'SQLITE_PERM', 4: 'SQLITE_ABORT', 5: 'SQLITE_BUSY',
  6: 'SQLITE_LOCKED', 7: 'SQLITE_NOMEM', 8: 'SQLITE_READONLY', 9: 'SQLITE_INTERRUPT', 10: 'SQLITE_IOERR',
  11: 'SQLITE_CORRUPT', 12: 'SQLITE_NOTFOUND', 13: 'SQLITE_FULL', 14: 'SQLITE_CANTOPEN', 15: 'SQLITE_PROTOCOL',
  16: 'SQLITE_EMPTY', 17: 'SQLITE_SCHEMA', 18: 'SQLITE_TOOBIG', 19: 'SQLITE_CONSTRAINT', 20: 'SQLITE_MISMATCH',
  21: 'SQLITE_MISUSE', 22: 'SQLITE_NOLFS', 23: 'SQLITE_AUTH', 24: 'SQLITE_FORMAT', 25: 'SQLITE_RANGE',
  26: 'SQLITE_NOTADB', 27: 'SQLITE_NOTICE', 28: 'SQLITE_WARNING',
}

function isBusy(err: unknown): boolean {
  const raw = (err as NativeSqliteError)?.rawCode
  return typeof raw === 'number' && (raw & 0xff) === 5
}

/** sqld reports SQLite failures with the base result code name (e.g. SQLITE_CONSTRAINT). */
function toHranaError(err: unknown): HranaError {
  if (err instanceof ProtoError) return { message: err.message, code: err.code }
  const e = err as NativeSqliteError
  if (e && typeof e.rawCode === 'number') {
    return { message: `SQLite error: ${e.message}`, code: SQLITE_BASE_CODES[e.rawCode & 0xff] ?? 'SQLITE_UNKNOWN' }
  }
  if (e && typeof e.code === 'string' && e.code.startsWith('SQLITE_')) {
    return { message: `SQLite error: ${e.message}`, code: e.code }
  }
  return { message: e instanceof Error ? e.message : String(err), code: 'INTERNAL' }
}

// ---------------------------------------------------------------------------
// HTTP helpers
// ---------------------------------------------------------------------------

const ok = (response: unknown) => ({ type: 'ok', response })
const errorResult = (error: HranaError) => ({ type: 'error', error })

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function parseJson(body: string): unknown {
  try {
    return JSON.parse(body)
  } catch {
    return undefined
  }
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
    req.on('error', reject)
  })
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  // exactly "application/json": the hrana client compares the header verbatim
  res.writeHead(status, { 'content-type': 'application/json' })
  res.end(JSON.stringify(body))
}

function sendText(res: http.ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'text/plain' })
  res.end(body)
}

function resolveDbPath(dbUrl: string | undefined): { dbPath: string; tempDir?: string } {
  if (dbUrl === undefined || dbUrl === ':memory:' || dbUrl === 'file::memory:') {
    const tempDir = fs.mkdtempSync(path.join(os.tmpdir(), 'runrelay-libsql-'))
    return { dbPath: path.join(tempDir, 'db.sqlite'), tempDir }
  }
  if (!dbUrl.startsWith('file:')) return { dbPath: dbUrl }
  let p = dbUrl.slice('file:'.length).replace(/[?#].*$/, '')
  if (p.startsWith('//')) p = p.replace(/^\/\/(localhost)?/, '')
  return { dbPath: decodeURIComponent(p) }
}

// CLI, for `npm run dev:worker` (scripts/dev-worker.ts runs it as a child process):
//   node --import tsx scripts/libsql-http-server.ts <db file> [port]
// The bearer token comes from LIBSQL_AUTH_TOKEN (unset: no auth). Prints one line,
// `listening <url>`, once it accepts requests; stops on SIGTERM/SIGINT.
if (process.argv[1] && path.resolve(process.argv[1]) === new URL(import.meta.url).pathname) {
  const [dbFile, port] = process.argv.slice(2)
  if (!dbFile) {
    console.error('usage: libsql-http-server.ts <db file> [port]')
    process.exit(2)
  }
  fs.mkdirSync(path.dirname(path.resolve(dbFile)), { recursive: true })
  const server = await startLibsqlHttpServer({ dbUrl: path.resolve(dbFile), authToken: process.env.LIBSQL_AUTH_TOKEN || undefined, port: Number(port ?? 0) })
  console.log(`listening ${server.url}`)
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => void server.close().then(() => process.exit(0)))
}
