import { createClient } from '@libsql/client'
import { drizzle } from 'drizzle-orm/libsql'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { schema, Store } from '../../src/db/store.ts'

/** A Store on the libSQL file in `dir`; a second one on a `dir` in use is another process's view. */
export const storeIn = (dir: string): Store => new Store(drizzle(createClient({ url: `file:${join(dir, 'db')}` }), { schema }))

/** A migrated Store on a libSQL file of its own, in a fresh temp dir (the caller removes `dir`). */
export async function migratedStore(name: string): Promise<{ dir: string; store: Store }> {
  const dir = mkdtempSync(join(tmpdir(), `runrelay-${name}-`))
  const store = storeIn(dir)
  await store.migrate()
  return { dir, store }
}

type NewRun = Parameters<Store['runs']['create']>[0]

/** A queued run of tenant `t` and workflow `wf`, created at `at`, its seq 1 the `CREATED` event; `fields` override. */
export function queuedRun(id: string, at: number, fields: Partial<NewRun> = {}): NewRun {
  return {
    id, tenantId: 't', workflowId: 'wf', status: 'queued', variables: {}, runtimeVariables: {}, tags: [], connectorState: {}, outputKeys: [],
    lastSeq: 1, transientErrors: 0, polls: 0, createdAt: at, updatedAt: at, ...fields,
  }
}

/** The `run.created` event a new run starts with. */
export const CREATED = { type: 'run.created', data: {} } as const

/** The drizzle database under a store, for tests that set up or inspect rows no module writes (src/ never reaches it). */
export const rawDb = (store: Store) => store['db']
