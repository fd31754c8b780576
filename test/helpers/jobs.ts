import { createClient, type Client } from '@libsql/client'
import { drizzle } from 'drizzle-orm/libsql'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { newId } from '../../src/core/crypto.ts'
import type { Clock } from '../../src/core/ports.ts'
import { schema, Store, type RunRow } from '../../src/db/store.ts'
import type { RunHosts } from '../../src/http/hosts.ts'

/** A clock the test moves by hand. */
export function fakeClock(start: number): Clock & { set(t: number): void; advance(ms: number): void } {
  let t = start
  return { now: () => t, set: (v) => { t = v }, advance: (ms) => { t += ms } }
}

/** A libSQL file database with runrelay's schema, and a way to open more connections to it (more "instances"). */
export async function tempDatabase() {
  const dir = mkdtempSync(join(tmpdir(), 'runrelay-jobs-'))
  const url = `file:${join(dir, 'db.sqlite')}`
  const clients: Client[] = []
  const open = async () => {
    const client = createClient({ url })
    await client.execute('PRAGMA journal_mode = WAL')
    await client.execute('PRAGMA busy_timeout = 5000')
    clients.push(client)
    return new Store(drizzle(client, { schema }))
  }
  const store = await open()
  await store.migrate()
  return { store, open, path: join(dir, 'db.sqlite'), close: () => { for (const c of clients) c.close(); rmSync(dir, { recursive: true, force: true }) } }
}

/**
 * A tenant, a demo connection and a demo workflow written straight into the store. `secret`: the
 * connection's sealed credentials, for code that opens them (the binder); `pollPolicy` and
 * `config`: the workflow's.
 */
export async function seedWorkflow(store: Store, now: number, o: { retentionDays?: number; secret?: string; pollPolicy?: Record<string, unknown>; config?: Record<string, unknown> } = {}) {
  const tenant = await store.keys.createTenant({ id: newId('ten'), name: 'acme', createdAt: now, retentionDays: o.retentionDays ?? null })
  const connection = await store.catalog.createConnection({ id: newId('con'), tenantId: tenant.id, name: 'demo', provider: 'demo', baseUrl: 'http://demo.invalid', config: {}, secret: o.secret ?? 'unused', createdAt: now, updatedAt: now })
  const workflow = await store.catalog.createWorkflow({ id: newId('wf'), tenantId: tenant.id, name: 'wf', connectionId: connection.id, upstreamWorkflowId: 'demo', pollPolicy: o.pollPolicy ?? {}, config: o.config ?? {}, tags: [], createdAt: now, updatedAt: now })
  return { tenant, connection, workflow }
}

/** Run hosts that only persist (no timers, nothing triggered): what a scheduler creates stays visible. */
export function recordingHosts(store: Store, clock: Clock): RunHosts {
  return {
    async create(row, created) { return (await store.runs.create(row, created)).run },
    async command(run: RunRow, name, payload, by) {
      if (name !== 'cancel') throw new Error(`unexpected command ${name}`)
      const fresh = (await store.runs.getById(run.id))!
      if (fresh.finishedAt) return fresh
      return (await store.runs.applyChange(fresh, { status: 'canceled', finishedAt: clock.now(), nextTickAt: null }, [
        { type: 'run.command', data: { command: 'cancel', by, payload } },
        { type: 'run.status_changed', data: { from: fresh.status, to: 'canceled', reason: 'canceled_by_user' } },
      ], clock.now())).run
    },
    async push() {},
  }
}
