import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startNode } from '../../src/runtime/node/main.ts'

export interface TestServer {
  url: string
  wsUrl: string
  rootKey: string
  dataDir: string
  stop(): Promise<void>
  runtime: Awaited<ReturnType<typeof startNode>>['runtime']
}

/** The real server on a free loopback port with a fresh embedded database. */
export async function startTestServer(env: Record<string, string> = {}): Promise<TestServer> {
  const dataDir = env.RUNRELAY_DATA_DIR ?? mkdtempSync(join(tmpdir(), 'runrelay-test-'))
  const rootKey = env.RUNRELAY_ROOT_KEY ?? 'rr_test_root_key_0123456789abcdef'
  const started = await startNode({
    PORT: '0', HOST: '127.0.0.1', RUNRELAY_DATA_DIR: dataDir, RUNRELAY_ROOT_KEY: rootKey, RUNRELAY_ALLOW_PRIVATE_NETWORK: '1',
    RUNRELAY_LOG: 'silent', RUNRELAY_HEARTBEAT_MS: '1000', ...env,
  })
  return {
    url: started.url,
    wsUrl: started.url.replace(/^http/, 'ws'),
    rootKey,
    dataDir,
    runtime: started.runtime,
    async stop() {
      await started.stop()
      if (!env.RUNRELAY_DATA_DIR) rmSync(dataDir, { recursive: true, force: true })
    },
  }
}

/** A small JSON client for the API. */
export function api(base: string, key?: string) {
  const call = async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
    const res = await fetch(base + path, {
      method,
      headers: { ...(key ? { authorization: `Bearer ${key}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    })
    const text = await res.text()
    let json: any = null
    try { json = text ? JSON.parse(text) : null } catch { json = text }
    return { status: res.status, body: json, headers: res.headers }
  }
  return {
    get: (p: string, h?: Record<string, string>) => call('GET', p, undefined, h),
    post: (p: string, b?: unknown, h?: Record<string, string>) => call('POST', p, b ?? {}, h),
    patch: (p: string, b: unknown, h?: Record<string, string>) => call('PATCH', p, b, h),
    delete: (p: string, h?: Record<string, string>) => call('DELETE', p, undefined, h),
    raw: call,
  }
}

/** A tenant with a full-scope key. */
export async function createTenant(server: Pick<TestServer, 'url' | 'rootKey'>, name = 'acme') {
  const res = await api(server.url, server.rootKey).post('/v1/tenants', { name })
  if (res.status !== 201) throw new Error(`tenant: ${res.status} ${JSON.stringify(res.body)}`)
  return { tenantId: res.body.tenant.id as string, key: res.body.key.key as string, client: api(server.url, res.body.key.key) }
}

/** Poll until `fn` returns a truthy value, or fail after `timeoutMs`. */
export async function until<T>(fn: () => Promise<T> | T, timeoutMs = 10_000, what = 'condition'): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await fn()
    if (v) return v as NonNullable<T>
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}
