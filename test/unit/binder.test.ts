import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
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

  it('a kept binding holds neither the run row it was bound from nor closures of its own: runs of one connection share them', async () => {
    const { store, binder, newRun } = await demoWorld()
    const created = await store.runs.create(newRun('run_m'), { type: 'run.created', data: {} })
    const other = await store.runs.create(newRun('run_n'), { type: 'run.created', data: {} })
    // The row is read back (a copy nobody else holds), bound, then let go.
    let row = await store.runs.getById(created.run.id)
    const rowGone = new WeakRef(row!)
    const binding = await binder.bind(row!)
    row = undefined
    const otherBinding = await binder.bind(other.run)
    // The connection's parts are shared; each run has its own callback URL.
    expect(binding.ctx.fetch).toBe(otherBinding.ctx.fetch)
    expect(binding.ctx.cache).toBe(otherBinding.ctx.cache)
    expect(binding.ctx.connection).toBe(otherBinding.ctx.connection)
    expect(binding.ctx.callbackUrl).not.toBe(otherBinding.ctx.callbackUrl)
    // The binding is kept for the run's life (bound again: the same), but the row is collectable.
    expect(await binder.bind(created.run)).toBe(binding)
    setFlagsFromString('--expose-gc')
    const gc = runInNewContext('gc') as () => void
    await new Promise((r) => setTimeout(r, 0))
    gc()
    expect(rowGone.deref()).toBeUndefined()
    // What the binding still does with the run: its other active runs (ids only).
    expect(await binding.ctx.otherActiveRuns!()).toEqual(['run_n'])
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
