/**
 * Starting N processes at once on a fresh database is safe: migrations, the deployment claim,
 * the encryption key's fingerprint and the root key are idempotent under concurrency. And a
 * process with another encryption key refuses to start, naming RUNRELAY_ENCRYPTION_KEY.
 *
 * 20 concurrent cold starts of the full start path (openEmbeddedStore + createLocalRuntime,
 * each its own HTTP client) on a fresh database behind the project's Hrana server (a child
 * process); then real
 * processes (`npm start`'s entry): 3 at once in `npm test`, 20 at once in `npm run test:soak`.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/config.ts'
import { newEncryptionKey, SecretBox } from '../../src/core/crypto.ts'
import { createLocalRuntime } from '../../src/runtime/local/runtime.ts'
import { openEmbeddedStore } from '../../src/runtime/local/embedded.ts'
import { startLibsqlServer, type LibsqlServerProcess } from '../helpers/libsql-server.ts'
import { freePort, spawnCollecting, startChildServer } from '../helpers/child.ts'
import { rawDb } from '../helpers/store.ts'

const SOAK = process.env.RUNRELAY_SOAK === '1'
const ROOT = 'rr_cold_root_key_0123456789abcdef'

describe('concurrent cold starts on one fresh database', () => {
  let dir: string
  const servers: LibsqlServerProcess[] = []
  // The server in its own process, as in production (in this one, its synchronous engine calls would compete with 20 runtimes).
  const freshDb = async (name: string) => {
    const s = await startLibsqlServer(join(dir, `${name}.db`))
    servers.push(s)
    return s
  }
  beforeAll(() => { dir = mkdtempSync(join(tmpdir(), 'runrelay-cold-')) })
  afterAll(async () => {
    for (const s of servers) await s.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  it('20 of 20 concurrent starts succeed (migrations, deployment, key fingerprint, root key), with or without RUNRELAY_ROOT_KEY', async () => {
    const key = newEncryptionKey()
    for (const rootKey of [ROOT, undefined]) {
      const db = await freshDb(rootKey ? 'given-root' : 'generated-root')
      const env = { LIBSQL_URL: db.url, RUNRELAY_DATA_DIR: dir, RUNRELAY_ENCRYPTION_KEY: key, RUNRELAY_LOG: 'silent', ...(rootKey ? { RUNRELAY_ROOT_KEY: rootKey } : {}) }
      const starts = await Promise.allSettled(Array.from({ length: 20 }, async () => {
        const config = parseConfig(env)
        const { store, client } = await openEmbeddedStore(config)
        const runtime = await createLocalRuntime({ store, config, secrets: await SecretBox.fromKey(key), upgradeWebSocket: (() => () => new Response(null, { status: 426 })) as any })
        return { runtime, client }
      }))
      const failed = starts.filter((s): s is PromiseRejectedResult => s.status === 'rejected').map((s) => String(s.reason) + ' <- ' + String(s.reason?.cause?.message ?? s.reason?.cause))
      const ok = starts.filter((s) => s.status === 'fulfilled').map((s) => s.value)
      await Promise.all(ok.map(async ({ runtime, client }) => { await runtime.shutdown(); client.close() }))
      expect(failed, `starts that failed (${rootKey ? 'given' : 'generated'} root key)`).toEqual([])
      // One root key however many started; a generated one is printed by exactly one process.
      const { store, client } = await openEmbeddedStore(parseConfig(env))
      const roots = await rawDb(store).all<{ n: number }>('select count(*) as n from api_keys where tenant_id is null' as any)
      client.close()
      expect(Number(roots[0]!.n)).toBe(1)
      if (!rootKey) expect(ok.filter((s) => s.runtime.rootKeyCreated).length).toBe(1)
    }
  }, 180_000)

  it(`${SOAK ? 20 : 3} real processes started at once all come up; one with another encryption key refuses to start, naming RUNRELAY_ENCRYPTION_KEY`, async () => {
    const db = await freshDb('processes')
    const key = newEncryptionKey()
    const n = SOAK ? 20 : 3
    const env = { LIBSQL_URL: db.url, RUNRELAY_DATA_DIR: dir, RUNRELAY_ENCRYPTION_KEY: key, RUNRELAY_ROOT_KEY: ROOT, RUNRELAY_LOG: "silent" }
    const started = await Promise.allSettled(Array.from({ length: n }, () => startChildServer(env, undefined, 120_000)))
    const failures = started.filter((s): s is PromiseRejectedResult => s.status === 'rejected').map((s) => String(s.reason).slice(0, 500))
    for (const s of started) if (s.status === 'fulfilled') { s.value.proc.kill('SIGKILL'); await s.value.exited }
    expect(failures).toEqual([])
    // Another key (a process started without the shared RUNRELAY_ENCRYPTION_KEY generates its own).
    const other = spawnCollecting(process.execPath, ['--import', 'tsx', 'src/runtime/node/main.ts'], {
      env: { ...process.env, ...env, RUNRELAY_ENCRYPTION_KEY: newEncryptionKey(), PORT: String(await freePort()), HOST: '127.0.0.1' },
    })
    const exit = await Promise.race([other.exited, new Promise<null>((r) => setTimeout(() => r(null), 60_000))])
    if (!exit) other.proc.kill('SIGKILL')
    expect(exit?.code, other.output()).toBe(1)
    expect(other.output()).toContain('RUNRELAY_ENCRYPTION_KEY does not match')
  }, SOAK ? 600_000 : 180_000)
})
