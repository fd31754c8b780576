import { watch } from 'node:fs'
import Database from 'libsql'
import { setNewest } from '../../core/bounded-map.ts'
import { isBookkeeping } from '../../db/db.ts'

/**
 * Distinct statements kept prepared, least recently used dropped first. A group commit's SQL
 * varies with its number of rows, written for one of 32 size classes (db/run-batch.ts), times
 * each set of updated columns: with a bound of 64 and oldest-first eviction the write connection
 * prepared its statements again on most commits (the profile at 2,000 runs, issue 26). A
 * prepared multi-row statement holds up to ~250 KiB of native memory, so the bound is also a
 * bound on that (when each group size had its own text, 1,024 of them could hold ~130 MB).
 */
const MAX_STATEMENTS = 256

/** The part of @libsql/client's Client that the write connection takes over. */
export interface BatchClient {
  batch(stmts: unknown[], mode?: string): Promise<unknown>
  close(): void
}

type Prepared = ReturnType<InstanceType<typeof Database>['prepare']>

/** Each write connection's `PRAGMA data_version` reader, by the client it serves. */
const versions = new WeakMap<object, () => number>()

/**
 * A reader of the database's change counter as the write connection sees it (`PRAGMA
 * data_version`: it moves whenever another connection, of this process or another one,
 * commits to the file, never for this connection's own commits), or undefined when `client`
 * has no write connection (a remote or in-memory database). A native call on a prepared
 * statement, no table read: timers that look for other processes' changes (the event tail's
 * safety net, the read-cache sync) skip their queries while it stands still.
 */
export function dataVersionOf(client: object): (() => number) | undefined { return versions.get(client) }

/** Each write connection's database file, by the client it serves. */
const files = new WeakMap<object, string>()

/**
 * A watch of the database file's commits, for the event tail's sleep (tail.ts `watchFile`), or
 * undefined without a write connection. It watches the WAL: every commit of any connection, in
 * this process or another, appends to it (nothing else writes it; the wal-index in -shm changes
 * through shared memory, which raises no change notice), and an idle process's file stays
 * untouched. It throws when the file cannot be watched.
 */
export function fileWatchOf(client: object): ((onChange: () => void) => () => void) | undefined {
  const file = files.get(client)
  if (file === undefined) return undefined
  return (onChange) => {
    // Not persistent: a watch never keeps the process alive.
    const watcher = watch(`${file}-wal`, { persistent: false }, () => onChange())
    // A watch that fails later (the file replaced, the watch limit) wakes the tail: its period reads as before.
    watcher.on('error', () => { watcher.close(); onChange() })
    return () => watcher.close()
  }
}

/** Each write connection's count of its own commits, by the client it serves. */
const ownCommits = new WeakMap<object, () => number>()

/**
 * A counter that moves on every commit to the database file, whoever makes it: `PRAGMA
 * data_version` (other connections, this process's pool included) plus the write connection's
 * own commits (which data_version never counts). Undefined without a write connection. Timers
 * that look for work any commit may have created (the jobs pass: schedules, webhook
 * deliveries, written through either connection) skip while it stands still.
 */
export function changeCounterOf(client: object): (() => number) | undefined {
  const version = versions.get(client), own = ownCommits.get(client)
  return version && own ? () => version() + own() : undefined
}

/**
 * The database file behind LIBSQL_URL when it is a plain embedded file (unset: the data dir's),
 * or undefined for anything else (remote, in memory, URL parameters), which keeps the client's own path.
 */
export function embeddedFilePath(libsqlUrl: string | undefined, dataDir: string): string | undefined {
  if (libsqlUrl === undefined) return `${dataDir.replace(/\/$/, '')}/runrelay.db`
  const m = /^file:([^/?#%][^?#%]*|\/[^/?#%][^?#%]*)$/.exec(libsqlUrl)
  return m && m[1] !== ':memory:' ? m[1] : undefined
}

/**
 * Every event is a commit (persisted before it is published), so on a busy run the commit is
 * runrelay's largest cost per event after the fan-out. @libsql/client prepares each statement
 * again on every call (and raises an exception inside to learn that BEGIN returns no rows);
 * this dedicated connection keeps the statements of the store's write batches prepared instead.
 * Measured on Bun at 20 commits/s: ~1.2 ms of CPU per batch through the client, ~0.65 ms here.
 * Node, Deno and Bun all open it for an embedded file (embedded.ts).
 *
 * It takes over `batch(…, 'write')` only, the store's atomic group commits (`Store.writeBatch`),
 * with the client's semantics: BEGIN IMMEDIATE (waiting out another writer up to `timeoutMs`),
 * the statements in order, COMMIT; any failure rolls everything back and rejects; reading
 * statements answer `{ rows }` of arrays, as the client's do. Everything else stays on the client's pool.
 * The connection is one more on the same file (WAL), exactly like another process's. Its
 * BEGIN IMMEDIATE waits synchronously, which is safe because no code holds a transaction of the
 * pool open across an await (no `client.transaction()`): every other write finishes in its call.
 */
export function withWriteConnection<C extends BatchClient>(client: C, path: string, timeoutMs: number): C {
  const db = new Database(path, { timeout: timeoutMs })
  const statements = new Map<string, Prepared>()
  const prepared = (sql: string): Prepared => {
    let s = statements.get(sql)
    if (!s) {
      s = db.prepare(sql)
      if (s.reader) s.raw(true)
    }
    // Most recently used last, so the least recently used is dropped first.
    setNewest(statements, sql, s, MAX_STATEMENTS)
    return s
  }
  const begin = db.prepare('BEGIN IMMEDIATE'), commit = db.prepare('COMMIT'), rollback = db.prepare('ROLLBACK')
  // Raw rows: this driver's pluck mode still answers objects (with timing metadata), never equal twice.
  const dataVersion = db.prepare('PRAGMA data_version')
  dataVersion.raw(true)
  // NaN when it cannot be read (the connection closed at shutdown): never equal, so callers query as before.
  versions.set(client, () => { try { return (dataVersion.get() as [number])[0] } catch { return NaN } })
  let committed = 0
  ownCommits.set(client, () => committed)
  files.set(client, path)
  const clientBatch = client.batch.bind(client)
  const clientClose = client.close.bind(client)
  client.batch = async (stmts: unknown[], mode?: string) => {
    if (mode !== 'write') return clientBatch(stmts, mode)
    begin.run()
    // Counted at the start: a write whose COMMIT failed (or whose outcome is unclear) moves it too.
    // Bookkeeping (the rate limiter's heartbeat) is not: no pass waits for it (db.ts isBookkeeping).
    if (!isBookkeeping(stmts)) committed++
    try {
      const results = (stmts as Array<{ sql: string; args: unknown[] }>).map(({ sql, args }) => {
        const s = prepared(sql)
        const values = (args ?? []).map((v) => (typeof v === 'boolean' ? Number(v) : v))
        if (s.reader) return { rows: s.all(values) }
        s.run(values)
        return { rows: [] }
      })
      commit.run()
      return results
    } catch (err) {
      if (db.inTransaction) rollback.run()
      throw err
    }
  }
  client.close = () => {
    statements.clear()
    db.close()
    clientClose()
  }
  return client
}
