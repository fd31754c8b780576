import type { Client, Config as ClientConfig } from '@libsql/client'
import type { Config } from '../../config.ts'
import { newEncryptionKey } from '../../core/crypto.ts'
import { redactText } from '../../core/redact.ts'
import { openStore } from '../../db/open-embedded.ts'
import type { Store } from '../../db/store.ts'
import { StoreTimeoutError } from '../../db/store-errors.ts'
import { embeddedFilePath, withWriteConnection } from './write-connection.ts'

// What Node and Deno share around the embedded database; file access is the runtime's.

const inDataDir = (config: Config, name: string) => (config.RUNRELAY_DATA_DIR.endsWith('/') ? config.RUNRELAY_DATA_DIR + name : `${config.RUNRELAY_DATA_DIR}/${name}`)

/** How long a statement waits for another connection's (or process's) write lock. */
const BUSY_TIMEOUT_MS = 5_000

/** Open LIBSQL_URL, by default the embedded file in the data dir (which must exist). */
export async function openEmbeddedStore(config: Config): Promise<{ store: Store; client: Client }> {
  const url = config.LIBSQL_URL ?? `file:${inDataDir(config, 'runrelay.db')}`
  // On Deno the package's `deno` export condition is its Node entry: the native addon through Node-API.
  // The busy timeout goes in the options, not a PRAGMA: the client pools connections, and each
  // new one must ride out the write lock of another process sharing the file.
  const remote = !url.startsWith('file:')
  const client = await openClient({
    url, authToken: config.LIBSQL_AUTH_TOKEN,
    ...(remote ? { fetch: fetchWithTimeout(config.RUNRELAY_STORE_TIMEOUT_MS) } : { timeout: BUSY_TIMEOUT_MS }),
  })
  if (url.startsWith('file:')) {
    // WAL lets readers (history replays) run beside the writer; a busy timeout rides out short locks.
    await client.execute('PRAGMA journal_mode = WAL')
    await client.execute(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`)
  }
  // The store's group commits go through a connection that keeps their statements prepared (write-connection.ts).
  const file = embeddedFilePath(config.LIBSQL_URL, config.RUNRELAY_DATA_DIR)
  if (file) withWriteConnection(client, file, BUSY_TIMEOUT_MS)
  return { store: openStore(client), client }
}

/**
 * fetch for the HTTP (Hrana) client that gives up after `ms`: a stalled database server (a pause,
 * a dead network path) then fails fast as a store fault (StoreTimeoutError), instead of holding
 * every API request and the lease renewal until it answers again.
 */
function fetchWithTimeout(ms: number) {
  return async (input: Request | string | URL, init?: RequestInit): Promise<Response> => {
    const signal = AbortSignal.timeout(ms)
    try {
      const req = input instanceof Request ? new Request(input, { signal }) : input
      return await fetch(req, input instanceof Request ? undefined : { ...init, signal })
    } catch (err) {
      if (signal.aborted) throw new StoreTimeoutError(`the database did not answer within ${ms} ms (RUNRELAY_STORE_TIMEOUT_MS)`, { cause: err })
      throw err
    }
  }
}

/**
 * The client for the URL's scheme, loading only that one: the package's main entry loads the
 * embedded engine, the WebSocket client (with its own copy of `ws`) and the HTTP client together,
 * about 100 ms of CPU at start-up, while a file URL needs only the first.
 */
async function openClient(options: ClientConfig): Promise<Client> {
  const { createClient } = options.url.startsWith('file:') ? await import('@libsql/client/sqlite3') : await import('@libsql/client')
  return createClient(options)
}

export interface KeyFiles {
  read(path: string): Promise<string | undefined>
  /** Write a new file with mode 0600; false when it exists already. */
  createExclusive(path: string, text: string): Promise<boolean>
}

/**
 * RUNRELAY_ENCRYPTION_KEY, or a key generated once and kept in the data dir (mode 0600).
 * Created exclusively: two processes starting on a fresh data dir end up with the same key.
 */
export async function encryptionKey(config: Config, files: KeyFiles): Promise<string> {
  if (config.RUNRELAY_ENCRYPTION_KEY) return config.RUNRELAY_ENCRYPTION_KEY
  const file = inDataDir(config, 'encryption.key')
  const existing = await files.read(file)
  if (existing !== undefined) return existing.trim()
  const key = newEncryptionKey()
  if (await files.createExclusive(file, key + '\n')) return key
  return (await files.read(file))!.trim()
}

/** JSON lines on stderr, unless silent. */
export function logger(level: Config['RUNRELAY_LOG']) {
  return (msg: string, extra?: Record<string, unknown>) => {
    if (level === 'silent') return
    // Last guard: a URL credential quoted in a message never reaches the log.
    console.error(redactText(JSON.stringify({ at: new Date().toISOString(), msg, ...extra })))
  }
}
