/**
 * Every list the API pages through (tenants, keys, connections, workflows, runs, schedules,
 * webhook endpoints and deliveries), over a real store: with a small page size the cursor walks
 * every matching row once, newest first (ties on created_at broken by id), and never one of
 * another tenant or one the filter leaves out.
 */
import { rmSync } from 'node:fs'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { decodeCursor, type Page, type Store } from '../../src/db/store.ts'
import { migratedStore, queuedRun } from '../helpers/store.ts'

/** Ids and creation times of the rows that must be listed: ties on purpose. */
const LISTED: Array<[string, number]> = [['a', 2], ['b', 1], ['c', 2], ['d', 3], ['e', 1], ['f', 2], ['g', 4]]
/** What a correct walk returns: created_at descending, then id descending. */
const NEWEST_FIRST = [...LISTED].sort((x, y) => y[1] - x[1] || (x[0] < y[0] ? 1 : -1)).map(([id]) => id)

type Lister = (cursor: [number, string] | null, limit: number) => Promise<Page<{ id: string }>>

/** Every page of `list` with `limit` rows a page (at most 20 pages); the ids in order. */
async function walk(list: Lister, limit = 2): Promise<string[]> {
  const ids: string[] = []
  let cursor: [number, string] | null = null
  for (let pages = 0; pages < 20; pages++) {
    const p = await list(cursor, limit)
    expect(p.items.length).toBeLessThanOrEqual(limit)
    ids.push(...p.items.map((r) => r.id))
    if (!p.nextCursor) return ids
    cursor = decodeCursor(p.nextCursor)
  }
  throw new Error('more than 20 pages')
}

describe('cursor pages of every list', () => {
  let dir: string
  let store: Store
  beforeEach(async () => { ({ dir, store } = await migratedStore('list-pages')) })
  afterEach(() => rmSync(dir, { recursive: true, force: true }))

  /** The listed rows, then rows of another tenant (`other`) and rows the filter leaves out (`left`), made by `make`. */
  const seed = async (make: (id: string, at: number, kind: 'listed' | 'other' | 'left') => Promise<unknown>) => {
    for (const [id, at] of LISTED) await make(id, at, 'listed')
    await make('x_other', 5, 'other')
    await make('y_left', 5, 'left')
  }

  it('tenants', async () => {
    for (const [id, at] of LISTED) await store.keys.createTenant({ id, name: id, createdAt: at })
    expect(await walk((c, l) => store.keys.listTenants(c, l))).toEqual(NEWEST_FIRST)
  })

  it('API keys of a tenant', async () => {
    await seed((id, at, kind) => store.keys.create({ id, tenantId: kind === 'listed' ? 't' : 'u', name: id, prefix: id, hash: id, scopes: [], createdAt: at }))
    expect(await walk((c, l) => store.keys.list('t', c, l))).toEqual(NEWEST_FIRST)
  })

  it('connections and workflows of a tenant', async () => {
    await seed((id, at, kind) => store.catalog.createConnection({ id, tenantId: kind === 'listed' ? 't' : 'u', name: id, provider: 'http', baseUrl: 'http://x.test', config: {}, secret: 's', createdAt: at, updatedAt: at }))
    await seed((id, at, kind) => store.catalog.createWorkflow({ id, tenantId: kind === 'listed' ? 't' : 'u', name: id, connectionId: 'c', upstreamWorkflowId: 'u', pollPolicy: {}, config: {}, tags: [], createdAt: at, updatedAt: at }))
    expect(await walk((c, l) => store.catalog.listConnections('t', c, l))).toEqual(NEWEST_FIRST)
    expect(await walk((c, l) => store.catalog.listWorkflows('t', c, l))).toEqual(NEWEST_FIRST)
  })

  it('runs of a tenant, filtered by status', async () => {
    await seed((id, at, kind) => store.runs.create(queuedRun(id, at, { tenantId: kind === 'other' ? 'u' : 't', status: kind === 'left' ? 'failed' : 'queued' }), { type: 'run.created', data: {} }))
    expect(await walk((cursor, limit) => store.runs.list('t', { status: ['queued'], cursor, limit }))).toEqual(NEWEST_FIRST)
  })

  it('schedules of a tenant, filtered by workflow', async () => {
    const q = store.schedules
    await seed((id, at, kind) => q.create({
      id, tenantId: kind === 'other' ? 'u' : 't', workflowId: kind === 'left' ? 'wf_2' : 'wf_1', timezone: 'UTC', variables: {}, runtimeVariables: {}, tags: [],
      misfire: 'skip', paused: true, fires: 0, skipped: 0, createdAt: at, updatedAt: at,
    }))
    expect(await walk((cursor, limit) => q.list('t', { workflowId: 'wf_1', cursor, limit }))).toEqual(NEWEST_FIRST)
  })

  it('webhook endpoints (filtered by workflow) and deliveries (filtered by status) of a tenant', async () => {
    const q = store.webhooks
    await seed((id, at, kind) => q.createEndpoint({
      id, tenantId: kind === 'other' ? 'u' : 't', workflowId: kind === 'left' ? 'wf_2' : 'wf_1', url: 'https://hooks.test/', filter: 'all', eventTypes: [], secret: 's', enabled: true, createdAt: at, updatedAt: at,
    }))
    let eventId = 0
    await seed((id, at, kind) => q.insertDeliveries([{
      id, tenantId: kind === 'other' ? 'u' : 't', endpointId: 'a', eventId: ++eventId, runId: 'r', workflowId: 'wf_1', eventType: 'run.created', payload: '{}',
      status: kind === 'left' ? 'failed' : 'pending', attempts: 0, cycleAttempts: 0, createdAt: at, updatedAt: at,
    }]))
    expect(await walk((cursor, limit) => q.listEndpoints('t', { workflowId: 'wf_1', cursor, limit }))).toEqual(NEWEST_FIRST)
    expect(await walk((cursor, limit) => q.listDeliveries('t', { status: ['pending'], cursor, limit }))).toEqual(NEWEST_FIRST)
  })
})
