// Seeds a demo tenant, connection and workflow on a running runrelay, and triggers a run:
//   RUNRELAY_KEY=<root key> npm run seed:demo
// The server is RUNRELAY_URL, else http://127.0.0.1:$PORT (PORT as given to `npm start`, default 8787).
// Against `npm run dev:worker` the root key is read from .dev.vars when RUNRELAY_KEY is unset.
// Prints the tenant key (shown once) and commands to watch runs live. Any failure is one line on
// stderr and exit code 1 (2 for a missing key): this is run by people following the quick start.
import { existsSync, readFileSync } from 'node:fs'
import { parseEnv } from 'node:util'

/** The server seed:demo talks to: RUNRELAY_URL, else the loopback address on PORT (default 8787). */
function seedTarget(env: Record<string, string | undefined>): string {
  if (env.RUNRELAY_URL) return env.RUNRELAY_URL.replace(/\/+$/, '')
  return `http://127.0.0.1:${env.PORT || '8787'}`
}

const base = seedTarget(process.env)
const devVars = new URL('../.dev.vars', import.meta.url)
const rootKey = process.env.RUNRELAY_KEY || (existsSync(devVars) ? parseEnv(readFileSync(devVars, 'utf8')).RUNRELAY_ROOT_KEY : undefined)
if (!rootKey) {
  console.error('seed:demo: set RUNRELAY_KEY to the root key printed by the first `npm start` (or `npm run dev:worker`)')
  process.exit(2)
}

class SeedError extends Error {}

async function call(key: string, method: string, path: string, body?: unknown) {
  let res: Response
  try {
    res = await fetch(base + path, { method, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(15_000) })
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause
    throw new SeedError(`cannot reach runrelay at ${base} (${cause?.code ?? cause?.message ?? (err as Error).message}): start it with \`npm start\`, or set RUNRELAY_URL (or PORT) to where it listens`)
  }
  const text = await res.text()
  let json: any
  try { json = JSON.parse(text) } catch { throw new SeedError(`${method} ${base}${path}: ${res.status}, not a runrelay answer (is RUNRELAY_URL right?)`) }
  if (!res.ok) throw new SeedError(`${method} ${path}: ${res.status} ${json?.error?.message ?? text.slice(0, 200)}${res.status === 401 ? ' (RUNRELAY_KEY must be the root key)' : ''}`)
  return json
}

try {
  const { tenant, key } = await call(rootKey, 'POST', '/v1/tenants', { name: 'demo' })
  const connection = await call(key.key, 'POST', '/v1/connections', { name: 'demo', provider: 'demo' })
  const workflow = await call(key.key, 'POST', '/v1/workflows', {
    name: 'Demo report', connection_id: connection.id, upstream_workflow_id: 'demo', tags: ['demo'],
    config: { durationMs: 15_000, steps: 5 }, poll_policy: { first_interval_ms: 500, max_interval_ms: 2000 },
  })
  const run = await call(key.key, 'POST', `/v1/workflows/${workflow.id}/runs`, { variables: {} })
  console.log(JSON.stringify({ tenant: tenant.id, key: key.key, workflow: workflow.id, run: run.id }, null, 2))
  console.log(`\nwatch it:   RUNRELAY_URL=${base} RUNRELAY_KEY=${key.key} npx runrelay runs follow ${run.id}`)
  console.log(`       or:  curl -N -H 'authorization: Bearer ${key.key}' -H 'accept: text/event-stream' ${base}/v1/runs/${run.id}/events`)
  console.log(`dashboard:  ${base}/  (sign in with the key above)`)
} catch (err) {
  if (!(err instanceof SeedError)) throw err
  console.error(`seed:demo: ${err.message}`)
  process.exit(1)
}
