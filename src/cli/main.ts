import { readFileSync } from 'node:fs'
import { Command, CommanderError } from 'commander'
import { subscribeRun, SubscriptionError, type RunEvent, type WebSocketConstructor } from '../client/index.ts'
import { isTerminal, type RunStatus } from '../core/domain.ts'

/**
 * The `runrelay` CLI. Options are parsed by commander (per-command `--help`, `--version`,
 * unknown options refused); output is plain lines without a TTY, JSON lines with `--json`.
 * Exit codes: 0 completed / ok, 1 the run failed, was canceled or timed out, 2 usage or request error.
 */
class CliError extends Error {
  readonly code: number
  constructor(message: string, code = 2) { super(message); this.code = code }
}

interface Io {
  out: (line: string) => void
  err: (line: string) => void
  /** Rewrite the current terminal line (spinner); only on a TTY. */
  status?: (line: string) => void
}

const defaultIo = (): Io => {
  // `runrelay … | head`: once the reader is gone, stop quietly instead of dying on EPIPE.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => { if (err.code === 'EPIPE') process.exit(0); throw err })
  return {
    out: (l) => { process.stdout.write(l + '\n') },
    err: (l) => { process.stderr.write(l + '\n') },
    status: process.stderr.isTTY ? (l) => { process.stderr.write(`\r\x1b[2K${l}`) } : undefined,
  }
}

/** The version of the runrelay package this CLI belongs to. */
export function cliVersion(): string {
  return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version
}

interface GlobalOptions { url?: string; key?: string; json: boolean }
const collect = (value: string, previous: string[] = []) => [...previous, value]

/** The WebSocket the SDK uses: the global one (Node 22+, Deno, Bun), else the `ws` package (Node 20). */
export async function webSocketImpl(): Promise<WebSocketConstructor> {
  const global = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket
  if (global) return global
  try {
    return (await import('ws')).WebSocket as unknown as WebSocketConstructor
  } catch {
    throw new CliError(`Node ${process.versions.node} has no global WebSocket and the ws package is missing: npm install ws (or use Node 22+)`)
  }
}

/** Runs the CLI with `argv` (without node and the script); resolves to the exit code. */
export async function main(argv: string[], env: Record<string, string | undefined> = process.env, io: Io = defaultIo()): Promise<number> {
  let exitCode = 0
  const program = new Command('runrelay')
    .description('trigger, watch and manage workflow runs')
    .version(cliVersion(), '-V, --version')
    .option('--url <url>', 'server URL (env RUNRELAY_URL, default http://127.0.0.1:8787)')
    .option('--key <key>', 'API key (env RUNRELAY_KEY)')
    .option('--json', 'print JSON lines (one JSON value per line) instead of text', false)
    .addHelpText('after', '\nexit codes: 0 completed / ok, 1 the run failed, was canceled or timed out, 2 usage or request error')
    .showHelpAfterError('(run with --help for usage)')
    .configureHelp({ showGlobalOptions: true })
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s.replace(/\n$/, '')), writeErr: (s) => io.err(s.replace(/\n$/, '')) })
  const globals = (cmd: Command): GlobalOptions & { client: ApiClient; baseUrl: string } => {
    const o = cmd.optsWithGlobals() as GlobalOptions
    const baseUrl = (o.url ?? env.RUNRELAY_URL ?? 'http://127.0.0.1:8787').replace(/\/+$/, '')
    const key = o.key ?? env.RUNRELAY_KEY
    return { ...o, key, baseUrl, client: apiClient(baseUrl, key) }
  }
  const run = (fn: (...args: any[]) => Promise<number>) => async (...args: any[]) => { exitCode = await fn(...args) }

  const server = (c: Command) => c.option('--port <port>', 'port (env PORT)').option('--host <host>', 'address (env HOST)').option('--data-dir <dir>', 'data directory (env RUNRELAY_DATA_DIR)')
  server(program.command('serve').description('start the server (Node; same settings as npm start: PORT, HOST, RUNRELAY_*)'))
    .action(run((o) => serve(o, env, io)))
  server(program.command('migrate').description('apply pending database migrations and exit'))
    .action(run(async (o) => {
      const { migrateOnly } = await import('../runtime/node/migrate-cli.ts')
      const applied = await migrateOnly(withServerEnv(o, env))
      io.out(applied ? `applied ${applied} migration(s)` : 'database is up to date')
      return 0
    }))

  const keysCmd = program.command('keys').description('manage API keys')
  const tenant = (c: Command) => c.option('--tenant <id>', "a tenant's keys (root key)")
  tenant(keysCmd.command('create').description('create an API key (shown once)').requiredOption('--name <name>', 'a name for the key')
    .option('--scopes <list>', 'comma-separated: workflows:read,workflows:write,runs:read,runs:write,admin'))
    .action(run((o, cmd: Command) => keys('create', [], o, globals(cmd), io)))
  tenant(keysCmd.command('list').description('list keys (prefixes only)')).action(run((o, cmd: Command) => keys('list', [], o, globals(cmd), io)))
  tenant(keysCmd.command('revoke').description('revoke a key').argument('<key-id>'))
    .action(run((id: string, o, cmd: Command) => keys('revoke', [id], o, globals(cmd), io)))

  program.command('workflows').description('list workflows').argument('<action>', 'list').action(run(async (action: string, _o, cmd: Command) => {
    if (action !== 'list') throw new CliError('usage: runrelay workflows list')
    const g = globals(cmd)
    const page = await g.client.get('/v1/workflows?limit=200')
    if (g.json) return lines(io, page.items)
    table<any>(io, page.items, [['id', (w) => w.id], ['name', (w) => w.name], ['upstream', (w) => w.upstream_workflow_id], ['tags', (w) => w.tags.join(',')]])
    return 0
  }))

  program.command('runs').description('list runs, newest first').argument('<action>', 'list')
    .option('--workflow <id-or-name>').option('--status <list>', 'comma-separated statuses').option('--tag <tag>').option('--limit <n>', 'how many', '20')
    .action(run(async (action: string, o, cmd: Command) => {
      if (action !== 'list') throw new CliError('usage: runrelay runs list [--workflow id] [--status s] [--tag t] [--limit n]')
      const g = globals(cmd)
      const q = new URLSearchParams({ limit: o.limit })
      if (o.workflow) q.set('workflow_id', await workflowId(g.client, o.workflow))
      if (o.status) q.set('status', o.status)
      if (o.tag) q.set('tag', o.tag)
      const page = await g.client.get(`/v1/runs?${q}`)
      if (g.json) return lines(io, page.items)
      table<any>(io, page.items, [['id', (r) => r.id], ['status', (r) => r.status], ['workflow', (r) => r.workflow_id], ['upstream id', (r) => r.upstream_id ?? ''],
        ['duration', (r) => fmtDuration(r.duration_ms)], ['created', (r) => r.created_at]])
      return 0
    }))

  program.command('trigger').description('trigger a run; with --follow, show it live and exit 0 only if it completed')
    .argument('<workflow>', 'workflow id or name')
    .option('--var <key=value>', 'a template variable (repeatable; JSON values are parsed)', collect, [])
    .option('--tag <tag>', 'a tag for the run (repeatable)', collect, [])
    .option('-f, --follow', 'follow the run live until it ends', false)
    .action(run(async (workflow: string, o, cmd: Command) => {
      const g = globals(cmd)
      // Know we can follow before anything is triggered.
      const WebSocket = o.follow ? await webSocketImpl() : undefined
      const wf = await workflowId(g.client, workflow)
      const created = await g.client.post(`/v1/workflows/${encodeURIComponent(wf)}/runs`, { variables: parseVars(o.var), tags: o.tag })
      if (g.json) io.out(JSON.stringify(created))
      else io.out(o.follow ? `run ${created.id} triggered (workflow ${wf})` : created.id)
      return o.follow ? follow(g.baseUrl, g.key, created.id, io, g.json, WebSocket!) : 0
    }))

  program.command('watch').description('follow a run live; exit 0 only if it completed').argument('<run-id>')
    .action(run(async (runId: string, _o, cmd: Command) => {
      const g = globals(cmd)
      return follow(g.baseUrl, g.key, runId, io, g.json, await webSocketImpl())
    }))

  try {
    await program.parseAsync(argv, { from: 'user' })
    return exitCode
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2
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

async function keys(action: 'create' | 'list' | 'revoke', rest: string[], o: { name?: string; scopes?: string; tenant?: string }, g: { client: ApiClient; json: boolean }, io: Io): Promise<number> {
  const { client } = g
  const base = o.tenant ? `/v1/tenants/${encodeURIComponent(o.tenant)}/keys` : '/v1/keys'
  switch (action) {
    case 'create': {
      if (!o.name) throw new CliError('usage: runrelay keys create --name <name> [--scopes runs:read,runs:write]')
      const k = await client.post(base, { name: o.name, ...(o.scopes && { scopes: o.scopes.split(',').map((s) => s.trim()).filter(Boolean) }) })
      if (g.json) return lines(io, [k])
      io.out(`${k.key}\n(id ${k.id}, scopes ${k.scopes.join(',')}; shown once, keep it)`)
      return 0
    }
    case 'list': {
      const page = await client.get(`${base}?limit=200`)
      if (g.json) return lines(io, page.items)
      table<any>(io, page.items, [['id', (k) => k.id], ['name', (k) => k.name], ['prefix', (k) => k.prefix], ['scopes', (k) => k.scopes.join(',')],
        ['last used', (k) => k.last_used_at ?? ''], ['revoked', (k) => k.revoked_at ?? '']])
      return 0
    }
    case 'revoke': {
      const k = await client.delete(`${base}/${encodeURIComponent(rest[0]!)}`)
      if (g.json) return lines(io, [k])
      io.out(`revoked ${k.id}`)
      return 0
    }
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
async function follow(url: string, key: string | undefined, runId: string, io: Io, json: boolean, WebSocket: WebSocketConstructor): Promise<number> {
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
    url, token: key, runId, WebSocket,
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

/** `--json`: one JSON value per line (JSON Lines), nothing else on stdout. */
function lines(io: Io, values: unknown[]): number {
  for (const v of values) io.out(JSON.stringify(v))
  return 0
}

function table<T>(io: Io, rows: T[], cols: Array<[string, (r: T) => string]>): void {
  const cells = [cols.map(([h]) => h.toUpperCase()), ...rows.map((r) => cols.map(([, f]) => String(f(r) ?? '')))]
  const widths = cols.map((_, i) => Math.max(...cells.map((row) => row[i]!.length)))
  for (const row of cells) io.out(row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd())
  if (rows.length === 0) io.out('(none)')
}
