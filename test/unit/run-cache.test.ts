import { rmSync } from 'node:fs'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { Store } from '../../src/db/store.ts'
import { migratedStore } from '../helpers/store.ts'

describe('Store run cache (read cache on)', () => {
  let dir: string
  let store: Store
  const row = { id: 'run_1', tenantId: 't', workflowId: 'wf', status: 'queued' as const, variables: {}, runtimeVariables: {}, tags: ['x'], connectorState: {}, outputKeys: [], lastSeq: 1, transientErrors: 0, polls: 0, createdAt: 1, updatedAt: 1 }

  beforeEach(async () => {
    ;({ dir, store } = await migratedStore('runcache'))
    store.enableReadCache(5_000)
  })
  afterEach(() => rmSync(dir, { recursive: true, force: true }))

  it('a write through the store drops the run and its history pages', async () => {
    const { run } = await store.runs.create(row, { type: 'run.created', data: {} })
    expect(run).toEqual(await store.runs.getById('run_1'))
    expect((await store.runs.get('t', 'run_1'))!.lastSeq).toBe(1)
    expect(await store.runs.get('other', 'run_1')).toBeUndefined()
    expect((await store.runs.events('run_1', 0, 500)).map((e) => e.seq)).toEqual([1])
    await store.runs.applyChange(run, { progress: 0.5 }, [{ type: 'run.progress', data: { progress: 0.5 } }], 2)
    expect((await store.runs.get('t', 'run_1'))!.lastSeq).toBe(2)
    expect((await store.runs.events('run_1', 0, 500)).map((e) => e.seq)).toEqual([1, 2])
  })
})
