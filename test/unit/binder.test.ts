import { afterEach, describe, expect, it } from 'vitest'
import { newEncryptionKey, SecretBox } from '../../src/core/crypto.ts'
import type { ConnectorBinding } from '../../src/core/ports.ts'
import { Watcher } from '../../src/core/watcher.ts'
import { LocalHub } from '../../src/runtime/local/hub.ts'
import { LocalLedger } from '../../src/runtime/local/ledger.ts'
import { LocalRunHost } from '../../src/runtime/local/run-host.ts'
import { createBinder } from '../../src/services/binder.ts'
import { seedWorkflow, tempDatabase } from '../helpers/jobs.ts'
import { queuedRun } from '../helpers/store.ts'

// The binder keeps each run's binding between its ticks (issue 26); a finished run's is dropped.
describe('binder (real store)', () => {
  let close = () => {}
  afterEach(() => close())

  /** A tenant with a demo workflow (runs of `config`), and a binder over the store. */
  async function demoWorld(config: Record<string, unknown> = {}) {
    const db = await tempDatabase()
    close = db.close
    const secrets = await SecretBox.fromKey(newEncryptionKey())
    const { tenant, workflow } = await seedWorkflow(db.store, Date.now(), { secret: await secrets.encrypt({}), pollPolicy: { firstIntervalMs: 100, maxIntervalMs: 100 }, config })
    const binder = createBinder({ store: db.store, secrets, fetch, clock: { now: () => Date.now() }, budget: { take: async () => {} }, publicUrl: 'http://127.0.0.1:1' })
    const newRun = (id: string) => queuedRun(id, Date.now(), { tenantId: tenant.id, workflowId: workflow.id, nextTickAt: Date.now(), deadlineAt: Date.now() + 60_000 })
    return { store: db.store, binder, newRun }
  }

  it('keeps a run\'s binding between binds, and builds it again once the run was unbound', async () => {
    const { store, binder, newRun } = await demoWorld()
    const { run } = await store.runs.create(newRun('run_b'), { type: 'run.created', data: {} })

    const first = await binder.bind(run)
    expect(first.ctx.callbackUrl).toContain('/v1/callbacks/run_b?')
    expect(await binder.bind(run)).toBe(first)
    binder.unbind(run.id)
    const again = await binder.bind(run)
    expect(again).not.toBe(first)
    expect(again.ctx.callbackUrl).toBe(first.ctx.callbackUrl)
  })

  it('the run host releases the binding of a run that finished', async () => {
    const { store, binder, newRun } = await demoWorld({ durationMs: 300, steps: 2, queueMs: 0 })
    const used = new Map<string, ConnectorBinding>()
    const ledger = new LocalLedger(store, new LocalHub(), () => Date.now())
    const watcher = new Watcher({ ledger, clock: { now: () => Date.now() }, random: () => 0, bind: async (r) => { const b = await binder.bind(r); used.set(r.id, b); return b }, unbind: binder.unbind })
    const host = new LocalRunHost(store, ledger, watcher, () => Date.now(), () => {}, { owner: 'p1', ttlMs: 5_000 })
    try {
      await host.resumeAll()
      const run = await host.create(newRun('run_f'), { type: 'run.created', data: {} })
      await expect.poll(async () => (await store.runs.getById(run.id))!.status, { timeout: 10_000 }).toBe('completed')
      const finished = (await store.runs.getById(run.id))!
      expect(used.get(run.id)).toBeDefined()
      // Bound again from scratch: nothing was kept for it after it finished.
      expect(await binder.bind(finished)).not.toBe(used.get(run.id))
    } finally {
      await host.stop()
    }
  })
})
