import { parseArgs, type ParseArgsConfig } from 'node:util'
import { subscribeRun, SubscriptionError, type RunEvent } from '../client/index.ts'
import { isTerminal, type RunStatus } from '../core/domain.ts'

const HELP = `runrelay: trigger, watch and manage workflow runs

usage: runrelay <command> [options]

commands
  serve                         start the server (Node; same settings as npm start: PORT, HOST, RUNRELAY_*)
  migrate                       apply pending database migrations and exit
  keys create --name <n> [--scopes a,b] [--tenant <id>]   create an API key (shown once)
  keys list [--tenant <id>]     list keys (prefixes only)
  keys revoke <key id> [--tenant <id>]
  workflows list                list workflows
  runs list [--workflow <id>] [--status s1,s2] [--tag t] [--limit n]
  trigger <workflow id or name> [--var k=v]... [--tag t]... [--follow]
                                trigger a run; with --follow, show it live and exit 0 only if it completed
  watch <run id>                follow a run live; exit 0 only if it completed

options
  --url <url>     server URL (env RUNRELAY_URL, default http://127.0.0.1:8787)
  --key <key>     API key (env RUNRELAY_KEY)
  --json          print JSON instead of tables
  -h, --help

exit codes: 0 completed / ok, 1 the run failed, was canceled or timed out, 2 usage or request error`

const OPTIONS = {
  url: { type: 'string' },
  key: { type: 'string' },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
  var: { type: 'string', multiple: true },
  tag: { type: 'string', multiple: true },
  follow: { type: 'boolean', short: 'f', default: false },
  name: { type: 'string' },
  scopes: { type: 'string' },
  tenant: { type: 'string' },
  workflow: { type: 'string' },
  status: { type: 'string' },
  limit: { type: 'string' },
  port: { type: 'string' },
  host: { type: 'string' },
  'data-dir': { type: 'string' },
} satisfies ParseArgsConfig['options']

class CliError extends Error {
  constructor(message: string, readonly code = 2) { super(message) }
}

interface Io {
  out: (line: string) => void
  err: (line: string) => void
  /** Rewrite the current terminal line (spinner); only on a TTY. */
  status?: (line: string) => void
}

const defaultIo = (): Io => ({
  out: (l) => process.stdout.write(l + '\n'),
  err: (l) => process.stderr.write(l + '\n'),
  status: process.stderr.isTTY ? (l) => process.stderr.write(`\r\x1b[2K${l}`) : undefined,
})

/** Runs the CLI with `argv` (without node and the script); resolves to the exit code. */
export async function main(argv: string[], env: Record<string, string | undefined> = process.env, io: Io = defaultIo()): Promise<number> {
  let parsed
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true })
  } catch (err) {
    io.err(`${(err as Error).message}\n\n${HELP}`)
    return 2
  }
  const { values: o, positionals: [cmd, ...rest] } = parsed
  if (o.help || !cmd) {
    io.out(HELP)
    return cmd || o.help ? 0 : 2
  }
  const url = (o.url ?? env.RUNRELAY_URL ?? 'http://127.0.0.1:8787').replace(/\/+$/, '')
  const key = o.key ?? env.RUNRELAY_KEY
  const client = apiClient(url, key)
  try {
    switch (cmd) {
      case 'serve': return await serve(o, env, io)
      case 'migrate': {
        const { migrateOnly } = await import('../runtime/node/migrate-cli.ts')
        const applied = await migrateOnly(withServerEnv(o, env))
        io.out(applied ? `applied ${applied} migration(s)` : 'database is up to date')
        return 0
      }
      case 'keys': return await keys(rest, o, client, io)
      case 'workflows': {
        if (rest[0] !== 'list') throw new CliError('usage: runrelay workflows list')
        const page = await client.get('/v1/workflows?limit=200')
        if (o.json) return print(io, page.items)
        table<any>(io, page.items, [['id', (w) => w.id], ['name', (w) => w.name], ['upstream', (w) => w.upstream_workflow_id], ['tags', (w) => w.tags.join(',')]])
        return 0
      }
      case 'runs': {
        if (rest[0] !== 'list') throw new CliError('usage: runrelay runs list [--workflow id] [--status s] [--tag t] [--limit n]')
        const q = new URLSearchParams({ limit: o.limit ?? '20' })
        if (o.workflow) q.set('workflow_id', await workflowId(client, o.workflow))
        if (o.status) q.set('status', o.status)
        if (o.tag?.[0]) q.set('tag', o.tag[0])
        const page = await client.get(`/v1/runs?${q}`)
        if (o.json) return print(io, page.items)
        table<any>(io, page.items, [['id', (r) => r.id], ['status', (r) => r.status], ['workflow', (r) => r.workflow_id], ['upstream id', (r) => r.upstream_id ?? ''],
          ['duration', (r) => fmtDuration(r.duration_ms)], ['created', (r) => r.created_at]])
        return 0
      }
      case 'trigger': {
        if (!rest[0]) throw new CliError('usage: runrelay trigger <workflow> [--var k=v]... [--tag t]... [--follow]')
        const wf = await workflowId(client, rest[0])
        const run = await client.post(`/v1/workflows/${encodeURIComponent(wf)}/runs`, { variables: parseVars(o.var ?? []), tags: o.tag ?? [] })
        if (!o.follow) {
          if (o.json) return print(io, run)
          io.out(run.id)
          return 0
        }
        io.out(`run ${run.id} triggered (workflow ${wf})`)
        return await follow(url, key, run.id, io, !!o.json)
      }
      case 'watch': {
        if (!rest[0]) throw new CliError('usage: runrelay watch <run id>')
        return await follow(url, key, rest[0], io, !!o.json)
      }
      default:
        throw new CliError(`unknown command: ${cmd}\n\n${HELP}`)
    }
  } catch (err) {
    io.err(`runrelay: ${(err as Error).message}`)
    return err instanceof CliError ? err.code : 2
  }
}

function withServerEnv(o: { port?: string; host?: string; 'data-dir'?: string }, env: Record<string, string | undefined>) {
  return { ...env, ...(o.port && { PORT: o.port }), ...(o.host && { HOST: o.host }), ...(o['data-dir'] && { RUNRELAY_DATA_DIR: o['data-dir'] }) }
}

async function serve(o: { port?: string; host?: string; 'data-dir'?: string }, env: Record<string, string | undefined>, io: Io): Promise<number> {
  const { startNode } = await import('../runtime/node/main.ts')
  const started = await startNode(withServerEnv(o, env))
  if (started.runtime.rootKeyCreated) io.out(`\nroot key (shown once, keep it): ${started.runtime.rootKeyCreated}\n`)
  io.out(`runrelay listening on ${started.url} (dashboard ${started.url}/, API reference ${started.url}/docs)`)
  return new Promise<number>((resolve) => {
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      process.once(signal, () => {
        started.stop().then(() => resolve(0), (err) => { io.err(String(err)); resolve(1) })
      })
    }
  })
}

async function keys(rest: string[], o: { name?: string; scopes?: string; tenant?: string; json?: boolean }, client: ApiClient, io: Io): Promise<number> {
  const base = o.tenant ? `/v1/tenants/${encodeURIComponent(o.tenant)}/keys` : '/v1/keys'
  switch (rest[0]) {
    case 'create': {
      if (!o.name) throw new CliError('usage: runrelay keys create --name <name> [--scopes runs:read,runs:write]')
      const k = await client.post(base, { name: o.name, ...(o.scopes && { scopes: o.scopes.split(',').map((s) => s.trim()).filter(Boolean) }) })
      if (o.json) return print(io, k)
      io.out(`${k.key}\n(id ${k.id}, scopes ${k.scopes.join(',')}; shown once, keep it)`)
      return 0
    }
    case 'list': {
      const page = await client.get(`${base}?limit=200`)
      if (o.json) return print(io, page.items)
      table<any>(io, page.items, [['id', (k) => k.id], ['name', (k) => k.name], ['prefix', (k) => k.prefix], ['scopes', (k) => k.scopes.join(',')],
        ['last used', (k) => k.last_used_at ?? ''], ['revoked', (k) => k.revoked_at ?? '']])
      return 0
    }
    case 'revoke': {
      if (!rest[1]) throw new CliError('usage: runrelay keys revoke <key id>')
      const k = await client.delete(`${base}/${encodeURIComponent(rest[1])}`)
      io.out(`revoked ${k.id}`)
      return 0
    }
    default:
      throw new CliError('usage: runrelay keys create|list|revoke')
  }
}

type ApiClient = ReturnType<typeof apiClient>

function apiClient(url: string, key: string | undefined) {
  const call = async (method: string, path: string, body?: unknown): Promise<any> => {
    if (!key) throw new CliError('no API key: pass --key or set RUNRELAY_KEY')
    let res: Response
    try {
      res = await fetch(url + path, {
        method,
        headers: { authorization: `Bearer ${key}`, ...(body !== undefined && { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(30_000),
      })
    } catch (err) {
      throw new CliError(`cannot reach ${url}: ${(err as Error).message}`)
    }
    const text = await res.text()
    let json: any = null
    try { json = text ? JSON.parse(text) : null } catch { /* not JSON */ }
    if (!res.ok) throw new CliError(`${method} ${path}: ${res.status} ${json?.error?.message ?? text.slice(0, 200)}`)
    return json
  }
  return { get: (p: string) => call('GET', p), post: (p: string, b: unknown) => call('POST', p, b), delete: (p: string) => call('DELETE', p) }
}

/** A workflow id, or the id of the workflow with that name. */
async function workflowId(client: ApiClient, idOrName: string): Promise<string> {
  if (/^wf_/.test(idOrName)) return idOrName
  const page = await client.get('/v1/workflows?limit=200')
  const matches = page.items.filter((w: { name: string }) => w.name === idOrName)
  if (matches.length === 1) return matches[0].id
  throw new CliError(matches.length ? `several workflows are named ${idOrName}: use the id` : `no workflow ${idOrName}`)
}

/** `--var k=v`: values that parse as JSON (numbers, booleans, objects) are taken as such, anything else as a string. */
export function parseVars(vars: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const v of vars) {
    const i = v.indexOf('=')
    if (i <= 0) throw new CliError(`--var ${v}: expected key=value`)
    const raw = v.slice(i + 1)
    try { out[v.slice(0, i)] = JSON.parse(raw) } catch { out[v.slice(0, i)] = raw }
  }
  return out
}

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏']

/** Follow a run with the SDK: one line per status change, a live progress line on a terminal; the exit code says how it ended. */
async function follow(url: string, key: string | undefined, runId: string, io: Io, json: boolean): Promise<number> {
  if (!key) throw new CliError('no API key: pass --key or set RUNRELAY_KEY')
  let status: RunStatus | undefined
  let progress: number | undefined
  let message = ''
  let frame = 0
  let startedAt: number | undefined
  const line = () => `${SPINNER[frame++ % SPINNER.length]} ${status ?? 'connecting'}${progress !== undefined ? ` ${bar(progress)} ${Math.round(progress * 100)}%` : ''}${message ? `  ${message}` : ''}`
  const spin = io.status && !json ? setInterval(() => io.status!(line()), 100) : undefined
  const print = (text: string) => { if (io.status && !json) io.status(''); io.out(text) }
  const sub = subscribeRun({
    url, token: key, runId,
    onEvent: (e: RunEvent) => {
      if (json) return io.out(JSON.stringify(e))
      if (typeof e.data.progress === 'number') progress = e.data.progress
      if (typeof e.data.message === 'string') message = e.data.message
      if (e.type === 'run.status_changed' || status === undefined) {
        if (e.status === 'running' && startedAt === undefined) startedAt = Date.parse(e.at)
        if (e.status !== status) {
          const took = isTerminal(e.status) && startedAt !== undefined ? ` in ${fmtDuration(Date.parse(e.at) - startedAt)}` : ''
          const err = e.type === 'run.status_changed' && e.data.error && typeof e.data.error === 'object' ? `: ${(e.data.error as { message?: string }).message ?? ''}` : ''
          print(`${time(e.at)} ${e.status}${took}${err}`)
        }
        status = e.status
      } else if (e.type === 'run.error' && !io.status) {
        print(`${time(e.at)} error: ${String((e.data as { message?: unknown }).message ?? '')}`)
      }
    },
    onStateChange: (s) => { if (s === 'reconnecting' && !json) print('connection lost; reconnecting…') },
  })
  try {
    const result = await sub.finished
    if (result.reason !== 'completed') return 2
    return result.status === 'completed' ? 0 : 1
  } catch (err) {
    if (err instanceof SubscriptionError) throw new CliError(err.code === 4004 ? `no run ${runId}` : err.message)
    throw err
  } finally {
    clearInterval(spin)
    if (io.status && !json) io.status('')
  }
}

const bar = (p: number, width = 20) => {
  const n = Math.max(0, Math.min(width, Math.round(p * width)))
  return `[${'#'.repeat(n)}${'-'.repeat(width - n)}]`
}
const time = (iso: string) => new Date(iso).toISOString().slice(11, 19)

function fmtDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return ''
  if (ms < 1000) return `${ms}ms`
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`
  return `${Math.floor(ms / 60_000)}m${Math.round((ms % 60_000) / 1000)}s`
}

function print(io: Io, value: unknown): number {
  io.out(JSON.stringify(value, null, 2))
  return 0
}

function table<T>(io: Io, rows: T[], cols: Array<[string, (r: T) => string]>): void {
  const cells = [cols.map(([h]) => h.toUpperCase()), ...rows.map((r) => cols.map(([, f]) => String(f(r) ?? '')))]
  const widths = cols.map((_, i) => Math.max(...cells.map((row) => row[i]!.length)))
  for (const row of cells) io.out(row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd())
  if (rows.length === 0) io.out('(none)')
}
