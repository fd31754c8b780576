/**
 * One test libSQL server per Workers test file, so the files can run at once: each has its own
 * database and its own outage switch (`POST /__test/failing`), which no other file can flip.
 *
 * The pool starts a workerd for each test file (vitest isolates files) and asks
 * vitest.workers.config.ts for that file's options; this is where that call gets its server.
 * Both run in vitest's main process, which globalSetup shares: global-setup.ts installs the
 * starter (and closes every server at the end), the config calls it. The key is on globalThis
 * because the config and the globalSetup are loaded as separate module copies.
 */
const KEY = Symbol.for('runrelay.workers.libsqlPerFile')

/** Starts a fresh test libSQL server and answers its URL. */
export type StartLibsql = () => Promise<string>

type Holder = { [KEY]?: StartLibsql }

/** Called by globalSetup: how a file's server is started. */
export function installLibsqlStarter(start: StartLibsql): void {
  (globalThis as Holder)[KEY] = start
}

/** Called by the pool options (once per test file's workerd): a fresh server's URL. */
export function startFileLibsql(): Promise<string> {
  const start = (globalThis as Holder)[KEY]
  if (!start) throw new Error('test/workers/global-setup.ts did not run: it starts the per-file libSQL servers')
  return start()
}
