import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort, startChildServer, type ChildServer } from './child.ts'
import { genericWorkflowConfig } from '../fakes/generic-upstream.ts'
import { api } from './server.ts'

/**
 * Several real server processes (`npm start`'s entry) on one database file, started by the
 * test: each keeps its port across restarts, so a client can aim at "process i" whatever
 * happened to it. The first starts alone (it applies the migrations), the others after it.
 */
export interface Cluster {
  readonly size: number
  readonly dataDir: string
  readonly rootKey: string
  /** Base URL of process i (also while it is down). */
  url(i: number): string
  /** Whether process i is running. */
  up(i: number): boolean
  /** Process i's output so far (stdout and stderr), over all its starts. */
  output(i: number): string
  /** Send `signal` to process i and wait for it to exit; its exit code. */
  stop(i: number, signal: 'SIGKILL' | 'SIGTERM'): Promise<number | null>
  /** Start process i again (same port, same environment). */
  start(i: number): Promise<void>
  /** SIGKILL every process and remove the data dir. */
  close(): Promise<void>
}

/** Start `size` processes on a fresh data dir; `perProcess(i)` adds to process i's environment. */
export async function startCluster(size: number, env: Record<string, string> = {}, perProcess: (i: number) => Record<string, string> = () => ({})): Promise<Cluster> {
  const dataDir = mkdtempSync(join(tmpdir(), 'runrelay-cluster-'))
  const rootKey = env.RUNRELAY_ROOT_KEY ?? 'rr_cluster_root_key_0123456789abcdef'
  const ports = await Promise.all(Array.from({ length: size }, () => freePort()))
  const nodes: (ChildServer | undefined)[] = Array(size).fill(undefined)
  const logs: string[] = Array(size).fill('')
  const fullEnv = {
    RUNRELAY_DATA_DIR: dataDir, RUNRELAY_ROOT_KEY: rootKey, RUNRELAY_ALLOW_PRIVATE_NETWORK: '1', RUNRELAY_HEARTBEAT_MS: '1000',
    RUNRELAY_LOG: 'info', ...env,
  }
  const start = async (i: number) => {
    if (nodes[i]) throw new Error(`process ${i} is already running`)
    // Generous: several processes start at once on a machine shared with other test runs.
    nodes[i] = await startChildServer({ ...fullEnv, ...perProcess(i) }, ports[i], 90_000)
  }
  const stop = async (i: number, signal: 'SIGKILL' | 'SIGTERM') => {
    const node = nodes[i]
    if (!node) return null
    node.proc.kill(signal)
    const code = await node.exited
    logs[i] += node.output()
    nodes[i] = undefined
    return code
  }
  const close = async () => {
    await Promise.all(nodes.map((_, i) => stop(i, 'SIGKILL')))
    rmSync(dataDir, { recursive: true, force: true })
  }
  try {
    await start(0)
    // All of the others are waited for, so that none is left running when one fails.
    const rest = await Promise.allSettled(Array.from({ length: size - 1 }, (_, k) => start(k + 1)))
    const failed = rest.find((r): r is PromiseRejectedResult => r.status === 'rejected')
    if (failed) throw failed.reason
  } catch (err) {
    await close()
    throw err
  }
  return {
    size, dataDir, rootKey,
    url: (i) => `http://127.0.0.1:${ports[i]}`,
    up: (i) => !!nodes[i],
    output: (i) => logs[i] + (nodes[i]?.output() ?? ''),
    stop, start, close,
  }
}

/** A tenant's key on the cluster (made through process 0) and a client per process. */
export async function clusterTenant(cluster: Cluster, name = 'multi') {
  const res = await api(cluster.url(0), cluster.rootKey).post('/v1/tenants', { name })
  if (res.status !== 201) throw new Error(`tenant: ${res.status} ${JSON.stringify(res.body)}`)
  const key = res.body.key.key as string
  return { key, client: (i: number) => api(cluster.url(i), key) }
}

/** Every run of the tenant (all pages), through process i. */
export async function allRuns(client: ReturnType<typeof api>): Promise<any[]> {
  const out: any[] = []
  let cursor: string | null = null
  do {
    const res: any = await client.get(`/v1/runs?limit=200${cursor ? `&cursor=${cursor}` : ''}`)
    if (res.status !== 200) throw new Error(`runs: ${res.status} ${JSON.stringify(res.body)}`)
    out.push(...res.body.items)
    cursor = res.body.next_cursor
  } while (cursor)
  return out
}

/** Each process's last output on the console when RUNRELAY_CLUSTER_LOGS=1 (why a cluster test failed). */
export function printClusterLogs(cluster: Cluster | undefined): void {
  if (process.env.RUNRELAY_CLUSTER_LOGS !== '1' || !cluster) return
  for (let i = 0; i < cluster.size; i++) console.log(`--- process ${i}\n${cluster.output(i).slice(-4000)}`)
}

/**
 * The workflow the ownership tests count upstream jobs with: a connection to the generic fake
 * upstream, and a trigger that names the run (`/jobs?run=<run id>`) so every job traces back to
 * its run. Returns the workflow's id.
 */
export async function countedWorkflow(client: ReturnType<typeof api>, upstreamUrl: string, pollPolicy: Record<string, number>): Promise<string> {
  const conn = await client.post('/v1/connections', { name: 'counting', provider: 'http', base_url: upstreamUrl })
  const wf = await client.post('/v1/workflows', {
    name: 'counted', connection_id: conn.body.id, upstream_workflow_id: 'jobs', input_template: { script: '{{script}}' },
    config: { ...genericWorkflowConfig, trigger: { ...genericWorkflowConfig.trigger, path: '/jobs?run={{run_id}}' } },
    poll_policy: pollPolicy,
  })
  if (wf.status !== 201) throw new Error(`workflow: ${wf.status} ${JSON.stringify(wf.body)}`)
  return wf.body.id as string
}
