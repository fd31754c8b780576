// Seeds a demo tenant, connection and workflow on a running runrelay, and triggers a run:
//   RUNRELAY_KEY=<root key> npm run seed:demo
// (against `npm run dev:worker` the root key is read from .dev.vars when RUNRELAY_KEY is unset).
// Prints the tenant key (shown once) and commands to watch runs live.
import { existsSync, readFileSync } from 'node:fs'
import { parseEnv } from 'node:util'

const base = (process.env.RUNRELAY_URL ?? 'http://127.0.0.1:8787').replace(/\/+$/, '')
const devVars = new URL('../.dev.vars', import.meta.url)
const rootKey = process.env.RUNRELAY_KEY || (existsSync(devVars) ? parseEnv(readFileSync(devVars, 'utf8')).RUNRELAY_ROOT_KEY : undefined)
if (!rootKey) {
  console.error('set RUNRELAY_KEY to the root key printed by the first `npm start` (or `npm run dev:worker`)')
  process.exit(2)
}

async function call(key: string, method: string, path: string, body?: unknown) {
  const res = await fetch(base + path, { method, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) })
  const json = await res.json()
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`)
  return json
}

const { tenant, key } = await call(rootKey, 'POST', '/v1/tenants', { name: 'demo' })
const connection = await call(key.key, 'POST', '/v1/connections', { name: 'demo', provider: 'demo' })
const workflow = await call(key.key, 'POST', '/v1/workflows', {
  name: 'Demo report', connection_id: connection.id, upstream_workflow_id: 'demo', tags: ['demo'],
  config: { durationMs: 15_000, steps: 5 }, poll_policy: { first_interval_ms: 500, max_interval_ms: 2000 },
})
const run = await call(key.key, 'POST', `/v1/workflows/${workflow.id}/runs`, { variables: {} })
console.log(JSON.stringify({ tenant: tenant.id, key: key.key, workflow: workflow.id, run: run.id }, null, 2))
console.log(`\nwatch it:   curl -N -H 'authorization: Bearer ${key.key}' -H 'accept: text/event-stream' ${base}/v1/runs/${run.id}/events`)
console.log(`dashboard:  ${base}/  (sign in with the key above)`)
