import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { Command, CommanderError, Option } from 'commander'
// From the client, not src/core: core's schemas would load zod at every start (about 110 KB to parse).
import { isTerminal, subscribeRun, SubscriptionError, type RunEvent, type RunStatus, type WebSocketConstructor } from '../client/index.ts'
import { apiFor, CliError, EXIT, type Api } from './api.ts'
import { completionScript } from './completion.ts'
import { configPath, DEFAULT_URL, readConfig, resolveTarget, writeConfig } from './config.ts'
import { fmtDuration, jsonLines, show, table, type Column, type Io } from './output.ts'

export { CliError, EXIT } from './api.ts'
export type { Io } from './output.ts'

/**
 * The `runrelay` CLI: every object the API manages, over the typed client generated from the
 * OpenAPI document (packages/sdk). Parsing by commander (per-command `--help`, unknown options
 * refused); tables on a terminal, tab-separated off one, JSON lines with `--json`; exit codes in
 * EXIT (src/cli/api.ts). bin/runrelay.mjs runs the esbuild bundle of this file.
 */

const stdinText = async (): Promise<string> => {
  const chunks: Buffer[] = []
  for await (const c of process.stdin) chunks.push(c as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}

/** Ask on the terminal; a secret is not echoed. */
async function ask(question: string, secret = false): Promise<string> {
  const { createInterface } = await import('node:readline')
  const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true })
  if (secret) {
    // Echo nothing of what is typed (readline writes each keystroke through _writeToOutput).
    const r = rl as unknown as { _writeToOutput: (s: string) => void; output: NodeJS.WriteStream }
    r._writeToOutput = (s: string) => { if (s.startsWith(question)) r.output.write(question) }
  }
  try {
    return await new Promise<string>((resolve) => rl.question(question, resolve))
  } finally {
    if (secret) process.stderr.write('\n')
    rl.close()
  }
}

const defaultIo = (): Io => {
  // `runrelay … | head`: once the reader is gone, stop quietly instead of dying on EPIPE.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => { if (err.code === 'EPIPE') process.exit(0); throw err })
  return {
    out: (l) => { process.stdout.write(l + '\n') },
    err: (l) => { process.stderr.write(l + '\n') },
    status: process.stderr.isTTY ? (l) => { process.stderr.write(`\r\x1b[2K${l}`) } : undefined,
    tty: process.stdout.isTTY === true,
    columns: process.stdout.columns,
    readStdin: stdinText,
    prompt: process.stdin.isTTY && process.stderr.isTTY ? ask : undefined,
  }
}

/** The version of the runrelay package this CLI belongs to (found from the source or the bundle). */
export function cliVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (let i = 0; i < 5; i++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version: string }
      if (pkg.name === 'runrelay') return pkg.version
    } catch { /* not here */ }
    dir = dirname(dir)
  }
  return '0.0.0'
}

/** The WebSocket the client uses: the global one (Node 22+, Deno, Bun), else the `ws` package (Node 20). */
export async function webSocketImpl(): Promise<WebSocketConstructor> {
  const global = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket
  if (global) return global
  try {
    return (await import('ws')).WebSocket as unknown as WebSocketConstructor
  } catch {
    throw new CliError(`Node ${process.versions.node} has no global WebSocket and the ws package is missing: npm install ws (or use Node 22+)`)
  }
}

const collect = (value: string, previous: string[] = []) => [...previous, value]
const csvList = (v: string | undefined) => (v ? v.split(',').map((s) => s.trim()).filter(Boolean) : undefined)
const int = (name: string) => (v: string) => {
  const n = Number(v)
  if (!Number.isInteger(n) || n < 0) throw new CliError(`${name} must be a whole number, not ${v}`)
  return n
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

const parseJson = (text: string, where: string): unknown => {
  try { return JSON.parse(text) } catch (err) { throw new CliError(`${where} is not valid JSON: ${(err as Error).message}`) }
}

/** A body from `-f <file|->` (JSON, or YAML by extension or content) and `-d <json>`; `-d` wins field by field. */
async function bodyInput(o: { file?: string; data?: string }, io: Io): Promise<Record<string, unknown>> {
  let body: Record<string, unknown> = {}
  if (o.file) {
    const text = o.file === '-' ? await io.readStdin!() : (() => {
      try { return readFileSync(o.file!, 'utf8') } catch (err) { throw new CliError(`cannot read ${o.file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`) }
    })()
    const yamlish = /\.ya?ml$/i.test(o.file) || (o.file === '-' && !/^\s*[[{]/.test(text))
    let parsed: unknown
    if (yamlish) {
      // Loaded only for YAML. yaml is CommonJS on Node: bundled, a dynamic import of it has only `default`.
      const yaml = await import('yaml') as typeof import('yaml') & { default?: typeof import('yaml') }
      const parse = yaml.parse ?? yaml.default!.parse
      try { parsed = parse(text) } catch (err) { throw new CliError(`${o.file} is not valid YAML: ${(err as Error).message}`) }
    } else parsed = parseJson(text, o.file)
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new CliError(`${o.file} must hold one object`)
    body = parsed as Record<string, unknown>
  }
  if (o.data) {
    const d = parseJson(o.data, '--data')
    if (!d || typeof d !== 'object' || Array.isArray(d)) throw new CliError('--data must be a JSON object')
    body = { ...body, ...(d as Record<string, unknown>) }
  }
  return body
}

/** Drop the undefined fields (flags not given), so they do not override the file's. */
const defined = (o: Record<string, unknown>) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined))

const withBody = (c: Command) => c
  .option('-f, --file <path>', 'the body as a JSON or YAML file (- reads stdin)')
  .option('-d, --data <json>', 'the body as JSON (fields override --file)')

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏']

/** Runs the CLI with `argv` (without node and the script); resolves to the exit code. */
export async function main(argv: string[], env: Record<string, string | undefined> = process.env, io: Io = defaultIo()): Promise<number> {
  let exitCode = 0
  const program = new Command('runrelay')
    .description('manage runrelay: tenants, keys, connections, workflows, runs, schedules, webhooks and tokens')
    .version(cliVersion(), '-V, --version')
    .option('--url <url>', `server URL (env RUNRELAY_URL, else the profile's, else ${DEFAULT_URL})`)
    .option('--key <key>', 'API key (env RUNRELAY_KEY, else the profile\'s)')
    .option('--profile <name>', 'a profile saved by `runrelay login` (env RUNRELAY_PROFILE; default: the current one)')
    .option('--json', 'print JSON lines (one JSON value per line) instead of text', false)
    .addHelpText('after', `
exit codes: 0 ok; 1 a followed run ended failed, canceled or timed out; 2 usage or configuration error;
3 the server refused the request (400, 409, 422); 4 not found; 5 unauthorized or missing scope (401, 403);
6 server unreachable, timed out or failing (5xx); 130 interrupted.
config: flags, then RUNRELAY_URL / RUNRELAY_KEY, then the profile file (${configPath(env)}).`)
    .showHelpAfterError('(run with --help for usage)')
    .configureHelp({ showGlobalOptions: true, sortSubcommands: false })
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s.replace(/\n$/, '')), writeErr: (s) => io.err(s.replace(/\n$/, '')) })

  type G = { api: Api; json: boolean; url: string; key?: string }
  const g = (cmd: Command): G => {
    const o = cmd.optsWithGlobals() as { url?: string; key?: string; profile?: string; json: boolean }
    const target = resolveTarget(o, env)
    let api: Api | undefined
    return { json: o.json, url: target.url, key: target.key, get api() { return (api ??= apiFor(target.url, target.key)) } }
  }
  // Every action resolves to its exit code; the last argument commander passes is the command.
  const act = (fn: (cmd: Command, ...args: any[]) => Promise<number | void>) => async (...args: any[]) => {
    const cmd = args[args.length - 1] as Command
    exitCode = (await fn(cmd, ...args.slice(0, -1))) ?? EXIT.ok
  }
  /** Print one object: JSON line, or `field value` lines. */
  const one = (cmd: Command, obj: unknown, fields?: string[]) => {
    if (g(cmd).json) jsonLines(io, [obj])
    else show(io, obj as Record<string, unknown>, fields)
  }
  /** Print a page (or every page with --all) as a table or JSON lines. */
  const page = async <T>(cmd: Command, o: { limit?: number; cursor?: string; all?: boolean }, fetchPage: (cursor?: string) => Promise<{ items: T[]; next_cursor: string | null }>, cols: Array<Column<T>>) => {
    const items: T[] = []
    let cursor = o.cursor
    let next: string | null = null
    do {
      const p = await fetchPage(cursor)
      items.push(...p.items)
      next = p.next_cursor
      cursor = next ?? undefined
    } while (o.all && next)
    if (g(cmd).json) jsonLines(io, items)
    else {
      table(io, items, cols)
      if (next && io.tty) io.err(`(more: --cursor ${next}, or --all)`)
    }
  }
  const paged = (c: Command) => c.option('--limit <n>', 'how many per page (1-200)', int('--limit')).option('--cursor <cursor>', 'continue after a page').option('--all', 'fetch every page', false)
  const id = { path: (v: string) => ({ params: { path: { id: v } } }) }

  // ——— server ———
  const server = (c: Command) => c.option('--port <port>', 'port (env PORT)').option('--host <host>', 'address (env HOST)').option('--data-dir <dir>', 'data directory (env RUNRELAY_DATA_DIR)')
  server(program.command('serve').description('start the server (Node; same settings as npm start: PORT, HOST, RUNRELAY_*)'))
    .action(act((_cmd, o) => serve(o, env, io)))
  server(program.command('migrate').description('apply pending database migrations and exit'))
    .action(act(async (_cmd, o) => {
      const { migrateOnly } = await import('../runtime/node/migrate-cli.ts')
      const applied = await migrateOnly(withServerEnv(o, env))
      io.out(applied ? `applied ${applied} migration(s)` : 'database is up to date')
    }))

  // ——— profiles ———
  program.command('login').description(`check a server URL and key and save them as a profile (${configPath(env)}, mode 0600)`)
    .option('--profile <name>', 'the profile to write (default: default)')
    .addHelpText('after', '\nThe key is read from --key, else prompted for (hidden) on a terminal, else read from stdin:\n  echo "$KEY" | runrelay login --url https://relay.example.com')
    .action(act(async (cmd) => {
      const o = cmd.optsWithGlobals() as { url?: string; key?: string; profile?: string; json: boolean }
      const name = o.profile ?? 'default'
      const url = (o.url ?? env.RUNRELAY_URL ?? (io.prompt ? (await io.prompt(`server URL [${DEFAULT_URL}]: `)).trim() : '') ?? '') || DEFAULT_URL
      let key = o.key ?? (io.prompt ? (await io.prompt('API key: ', true)).trim() : (await io.readStdin!()).trim())
      if (!key) throw new CliError('no key given: pass --key, type it at the prompt, or pipe it on stdin')
      key = key.split('\n')[0]!.trim()
      const api = apiFor(url.replace(/\/+$/, ''), key)
      const me = await api.send(api.raw.GET('/v1/me'), 'GET /v1/me') as { tenant_id?: string | null; scopes?: string[]; kind?: string }
      const path = configPath(env)
      const config = readConfig(path)
      config.profiles[name] = { url: url.replace(/\/+$/, ''), key }
      config.current = name
      writeConfig(path, config)
      if (o.json) jsonLines(io, [{ profile: name, url, path, me }])
      else io.out(`logged in to ${url} as ${me.tenant_id ?? 'root'} (${(me.scopes ?? []).join(',') || me.kind}); saved as profile "${name}" in ${path}`)
    }))
  program.command('logout').description('remove a saved profile').option('--profile <name>', 'the profile to remove (default: the current one)')
    .action(act(async (cmd) => {
      const path = configPath(env)
      const config = readConfig(path)
      const name = (cmd.opts() as { profile?: string }).profile ?? config.current ?? 'default'
      if (!config.profiles[name]) throw new CliError(`no profile "${name}" in ${path}`)
      delete config.profiles[name]
      if (config.current === name) config.current = Object.keys(config.profiles)[0]
      writeConfig(path, config)
      io.out(`removed profile "${name}"`)
    }))
  program.command('whoami').description('the tenant and scopes of the key in use').action(act(async (cmd) => {
    const { api, url } = g(cmd)
    const me = await api.send(api.raw.GET('/v1/me'), 'GET /v1/me')
    if (g(cmd).json) return void jsonLines(io, [{ url, ...me }])
    show(io, { url, ...(me as Record<string, unknown>) })
  }))

  // ——— tenants and keys (root) ———
  const tenants = program.command('tenants').description('tenants (root key)')
  tenants.command('create').description('create a tenant and its first key (shown once)').requiredOption('--name <name>')
    .option('--retention-days <n>', 'keep finished runs this many days', int('--retention-days')).option('--without-key', 'do not create a first key')
    .action(act(async (cmd, o) => {
      const { api, json } = g(cmd)
      const t = await api.send(api.raw.POST('/v1/tenants', { body: defined({ name: o.name, retention_days: o.retentionDays, create_key: o.withoutKey ? false : undefined }) as never }), 'create tenant')
      if (json) return void jsonLines(io, [t])
      io.out(`tenant ${t.tenant.id} (${t.tenant.name})`)
      if (t.key?.key) io.out(`key ${t.key.key}\n(id ${t.key.id}, scopes ${t.key.scopes.join(',')}; shown once, keep it)`)
    }))
  paged(tenants.command('list').description('list tenants')).action(act(async (cmd, o) => {
    const { api } = g(cmd)
    await page(cmd, o, async (cursor) => api.send(api.raw.GET('/v1/tenants', { params: { query: { limit: o.limit, cursor } } }), 'list tenants'),
      [['id', (t) => t.id], ['name', (t) => t.name], ['retention days', (t) => t.retention_days], ['created', (t) => t.created_at]])
  }))

  const keys = program.command('keys').description('API keys (an admin key: its tenant\'s; the root key: any tenant\'s with --tenant)')
  const tenant = (c: Command) => c.option('--tenant <id>', "a tenant's keys (root key)")
  const keyCols: Array<Column<any>> = [['id', (k) => k.id], ['name', (k) => k.name], ['prefix', (k) => k.prefix], ['scopes', (k) => k.scopes], ['last used', (k) => k.last_used_at], ['revoked', (k) => k.revoked_at]]
  tenant(keys.command('create').description('create an API key (shown once)').requiredOption('--name <name>', 'a name for the key')
    .option('--scopes <list>', 'comma-separated: workflows:read,workflows:write,runs:read,runs:write,admin (default: all)'))
    .action(act(async (cmd, o) => {
      const { api, json } = g(cmd)
      const body = defined({ name: o.name, scopes: csvList(o.scopes) }) as never
      const k = o.tenant
        ? await api.send(api.raw.POST('/v1/tenants/{id}/keys', { ...id.path(o.tenant), body }), 'create key')
        : await api.send(api.raw.POST('/v1/keys', { body }), 'create key')
      if (json) return void jsonLines(io, [k])
      io.out(`${k.key}\n(id ${k.id}, scopes ${k.scopes.join(',')}; shown once, keep it)`)
    }))
  paged(tenant(keys.command('list').description('list keys (prefixes only)'))).action(act(async (cmd, o) => {
    const { api } = g(cmd)
    await page(cmd, o, async (cursor) => o.tenant
      ? api.send(api.raw.GET('/v1/tenants/{id}/keys', { params: { path: { id: o.tenant }, query: { limit: o.limit, cursor } } }), 'list keys')
      : api.send(api.raw.GET('/v1/keys', { params: { query: { limit: o.limit, cursor } } }), 'list keys'), keyCols)
  }))
  tenant(keys.command('revoke').description('revoke a key').argument('<key-id>')).action(act(async (cmd, keyId: string, o) => {
    const { api, json } = g(cmd)
    const k = o.tenant
      ? await api.send(api.raw.DELETE('/v1/tenants/{id}/keys/{keyId}', { params: { path: { id: o.tenant, keyId } } }), 'revoke key')
      : await api.send(api.raw.DELETE('/v1/keys/{keyId}', { params: { path: { keyId } } }), 'revoke key')
    if (json) return void jsonLines(io, [k])
    io.out(`revoked ${k.id}`)
  }))

  // ——— connections ———
  const connections = program.command('connections').alias('connection').description('upstream credentials and base URLs (secrets are write-only)')
  const connCols: Array<Column<any>> = [['id', (c) => c.id], ['name', (c) => c.name], ['provider', (c) => c.provider], ['base url', (c) => c.base_url], ['credentials', (c) => c.credential_fields]]
  paged(connections.command('list').description('list connections')).action(act(async (cmd, o) => {
    const { api } = g(cmd)
    await page(cmd, o, async (cursor) => api.send(api.raw.GET('/v1/connections', { params: { query: { limit: o.limit, cursor } } }), 'list connections'), connCols)
  }))
  connections.command('show').description('a connection (credential names only)').argument('<connection>', 'id or name').action(act(async (cmd, c: string) => {
    const { api } = g(cmd)
    one(cmd, await api.send(api.raw.GET('/v1/connections/{id}', id.path(await connectionId(api, c))), 'show connection'))
  }))
  /** Credentials from `--credential NAME` (prompted, hidden) and `--credentials <file|->` (a JSON object). */
  const credentials = async (o: { credential?: string[]; credentials?: string }): Promise<Record<string, string> | undefined> => {
    let out: Record<string, string> | undefined
    if (o.credentials) {
      const text = o.credentials === '-' ? await io.readStdin!() : readFileSync(o.credentials, 'utf8')
      const parsed = parseJson(text, o.credentials === '-' ? 'stdin' : o.credentials)
      if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed) || Object.values(parsed).some((v) => typeof v !== 'string')) throw new CliError('--credentials must be a JSON object of strings')
      out = { ...(parsed as Record<string, string>) }
    }
    for (const name of o.credential ?? []) {
      if (name.includes('=')) throw new CliError(`--credential ${name.split('=')[0]}: give the name only; the value is prompted for (or use --credentials - with JSON on stdin), so it stays out of shell history`)
      if (!io.prompt) throw new CliError(`--credential ${name} needs a terminal to prompt on; off one, pipe JSON to --credentials -`)
      ;(out ??= {})[name] = await io.prompt(`${name}: `, true)
    }
    return out
  }
  const connFlags = (c: Command) => withBody(c).option('--name <name>').option('--base-url <url>', 'the upstream\'s base URL')
    .option('--config <json>', 'provider settings as JSON').option('--rate-limit <n>', 'requests per second to the upstream', Number)
    .option('--credential <name>', 'a credential to prompt for (hidden; repeatable)', collect, [])
    .option('--credentials <file>', 'credentials as a JSON object from a file (- reads stdin)')
  connFlags(connections.command('create').description('create a connection').option('--provider <provider>', 'demo, http, wokelo, …'))
    .addHelpText('after', '\nexamples:\n  runrelay connections create --name acme --provider http --base-url https://api.acme.dev --credential api_key\n  echo \'{"api_key":"…"}\' | runrelay connections create --name acme --provider wokelo --credentials -')
    .action(act(async (cmd, o) => {
      const { api } = g(cmd)
      const body = { ...await bodyInput(o, io), ...defined({ name: o.name, provider: o.provider, base_url: o.baseUrl, config: o.config ? parseJson(o.config, '--config') : undefined, rate_limit_per_second: o.rateLimit, credentials: await credentials(o) }) }
      one(cmd, await api.send(api.raw.POST('/v1/connections', { body: body as never }), 'create connection'))
    }))
  connFlags(connections.command('update').description('update a connection; credentials given are merged (an empty value removes one)').argument('<connection>', 'id or name'))
    .action(act(async (cmd, c: string, o) => {
      const { api } = g(cmd)
      const body = { ...await bodyInput(o, io), ...defined({ name: o.name, base_url: o.baseUrl, config: o.config ? parseJson(o.config, '--config') : undefined, rate_limit_per_second: o.rateLimit, credentials: await credentials(o) }) }
      one(cmd, await api.send(api.raw.PATCH('/v1/connections/{id}', { ...id.path(await connectionId(api, c)), body: body as never }), 'update connection'))
    }))
  connections.command('delete').description('delete a connection (refused while workflows use it)').argument('<connection>', 'id or name').action(act(async (cmd, c: string) => {
    const { api, json } = g(cmd)
    const d = await api.send(api.raw.DELETE('/v1/connections/{id}', id.path(await connectionId(api, c))), 'delete connection')
    if (json) return void jsonLines(io, [d])
    io.out(`deleted ${d.id}`)
  }))
  connections.command('test').description('check that the connection reaches its upstream (exit 3 when it does not)').argument('<connection>', 'id or name').action(act(async (cmd, c: string) => {
    const { api, json } = g(cmd)
    const connId = await connectionId(api, c)
    if (!json) io.err(`testing ${connId}…`)
    const r = await api.send(api.raw.POST('/v1/connections/{id}/test', id.path(connId)), 'test connection') as { ok: boolean; [k: string]: unknown }
    if (json) jsonLines(io, [r])
    else show(io, r)
    return r.ok ? EXIT.ok : EXIT.refused
  }))
  connections.command('discover').alias('workflows').description('list the upstream\'s workflows (to bind with `workflows create --upstream-id`)').argument('<connection>', 'id or name')
    .action(act(async (cmd, c: string) => {
      const { api, json } = g(cmd)
      const r = await api.send(api.raw.GET('/v1/connections/{id}/workflows', id.path(await connectionId(api, c))), 'discover workflows') as { items: Array<Record<string, unknown>> }
      if (json) return void jsonLines(io, r.items)
      table(io, r.items, [['upstream id', (w) => w.id], ['name', (w) => w.name], ['description', (w) => w.description]])
    }))

  // ——— workflows ———
  const workflows = program.command('workflows').alias('workflow').description('bindings of a connection, an upstream workflow, an input template and a poll policy')
  const wfCols: Array<Column<any>> = [['id', (w) => w.id], ['name', (w) => w.name], ['connection', (w) => w.connection_id], ['upstream', (w) => w.upstream_workflow_id], ['tags', (w) => w.tags]]
  paged(workflows.command('list').description('list workflows')).action(act(async (cmd, o) => {
    const { api } = g(cmd)
    await page(cmd, o, async (cursor) => api.send(api.raw.GET('/v1/workflows', { params: { query: { limit: o.limit, cursor } } }), 'list workflows'), wfCols)
  }))
  workflows.command('show').description('a workflow').argument('<workflow>', 'id or name').action(act(async (cmd, w: string) => {
    const { api } = g(cmd)
    one(cmd, await api.send(api.raw.GET('/v1/workflows/{id}', id.path(await workflowId(api, w))), 'show workflow'))
  }))
  const wfFlags = (c: Command) => withBody(c).option('--name <name>').option('--connection <connection>', 'connection id or name')
    .option('--upstream-id <id>', 'the upstream workflow id (see `connections discover`)').option('--template <json>', 'input template as JSON ({{var}} and [[runtime]] placeholders)')
    .option('--config <json>', 'workflow settings as JSON').option('--poll <json>', 'poll policy as JSON (first_interval_ms, max_interval_ms, deadline_ms, …)')
    .option('--tag <tag>', 'a tag (repeatable; replaces the tags)', collect, undefined)
    .addOption(new Option('--trigger-retry <mode>').choices(['at_most_once', 'at_least_once']))
  const wfBody = async (api: Api, o: any) => ({
    ...await bodyInput(o, io),
    ...defined({
      name: o.name, connection_id: o.connection ? await connectionId(api, o.connection) : undefined, upstream_workflow_id: o.upstreamId,
      input_template: o.template ? parseJson(o.template, '--template') : undefined, config: o.config ? parseJson(o.config, '--config') : undefined,
      poll_policy: o.poll ? parseJson(o.poll, '--poll') : undefined, tags: o.tag, trigger_retry: o.triggerRetry,
    }),
  })
  wfFlags(workflows.command('create').description('create a workflow from flags and/or a JSON or YAML file'))
    .addHelpText('after', '\nexamples:\n  runrelay workflows create --name report --connection acme --upstream-id wf-42 --template \'{"company":"{{company}}"}\'\n  runrelay workflows create -f workflow.yaml')
    .action(act(async (cmd, o) => {
      const { api } = g(cmd)
      one(cmd, await api.send(api.raw.POST('/v1/workflows', { body: await wfBody(api, o) as never }), 'create workflow'))
    }))
  wfFlags(workflows.command('update').description('update a workflow (only the fields given)').argument('<workflow>', 'id or name')).action(act(async (cmd, w: string, o) => {
    const { api } = g(cmd)
    one(cmd, await api.send(api.raw.PATCH('/v1/workflows/{id}', { ...id.path(await workflowId(api, w)), body: await wfBody(api, o) as never }), 'update workflow'))
  }))
  workflows.command('delete').description('delete a workflow (refused while it has unfinished runs)').argument('<workflow>', 'id or name').action(act(async (cmd, w: string) => {
    const { api, json } = g(cmd)
    const d = await api.send(api.raw.DELETE('/v1/workflows/{id}', id.path(await workflowId(api, w))), 'delete workflow')
    if (json) return void jsonLines(io, [d])
    io.out(`deleted ${d.id}`)
  }))
  workflows.command('summary').description('counts by status, success rate, p50/p95 over a window').argument('<workflow>', 'id or name')
    .option('--from <iso>').option('--to <iso>').addOption(new Option('--bucket <b>').choices(['hour', 'day']))
    .action(act(async (cmd, w: string, o) => {
      const { api } = g(cmd)
      const s = await api.send(api.raw.GET('/v1/workflows/{id}/summary', { params: { path: { id: await workflowId(api, w) }, query: defined({ from: o.from, to: o.to, bucket: o.bucket }) as never } }), 'workflow summary')
      const { timeline: _t, ...rest } = s as Record<string, unknown>
      if (g(cmd).json) jsonLines(io, [s])
      else show(io, rest)
    }))

  // ——— runs ———
  const triggerFlags = (c: Command) => c
    .option('--var <key=value>', 'a template variable (repeatable; JSON values are parsed)', collect, [])
    .option('--tag <tag>', 'a tag for the run (repeatable)', collect, [])
    .option('--idempotency-key <key>', 'the same key and body answer the first run again, never a second one')
    .option('--at <iso>', 'start later (ISO 8601); the run is scheduled until then')
    .option('-F, --follow', 'follow the run live until it ends; exit 0 only if it completed', false)
  const triggerAction = act(async (cmd, workflow: string, o) => {
    const { api, json, url, key } = g(cmd)
    // Know we can follow before anything is triggered.
    const WebSocket = o.follow ? await webSocketImpl() : undefined
    const wf = await workflowId(api, workflow)
    const created = await api.send(api.raw.POST('/v1/workflows/{id}/runs', {
      params: { path: { id: wf }, header: o.idempotencyKey ? { 'Idempotency-Key': o.idempotencyKey } : {} },
      body: defined({ variables: parseVars(o.var), tags: o.tag, scheduled_at: o.at }) as never,
    }), 'trigger')
    if (json) io.out(JSON.stringify(created))
    else io.out(o.follow ? `run ${created.id} triggered (workflow ${wf})` : created.id)
    return o.follow ? follow(url, key!, created.id, io, json, WebSocket!) : EXIT.ok
  })
  triggerFlags(program.command('trigger').description('trigger a run of a workflow (prints the run id)').argument('<workflow>', 'workflow id or name')).action(triggerAction)

  const runs = program.command('runs').alias('run').description('list, read, follow and command runs')
  const runCols: Array<Column<any>> = [['id', (r) => r.id], ['status', (r) => r.status], ['workflow', (r) => r.workflow_id], ['upstream id', (r) => r.upstream_id],
    ['progress', (r) => (typeof r.progress === 'number' ? `${Math.round(r.progress * 100)}%` : '')], ['duration', (r) => fmtDuration(r.duration_ms)], ['created', (r) => r.created_at]]
  runs.command('list').description('list runs, newest first, with the API\'s filters')
    .option('--workflow <id-or-name>', 'a workflow (repeatable)', collect, [])
    .option('--status <list>', 'comma-separated statuses (queued,running,failed,…)').option('--tag <tag>')
    .option('-q, --search <text>', 'a run id, an upstream id or a tag').option('--since <iso>', 'created at or after').option('--until <iso>', 'created before')
    .option('--limit <n>', 'how many per page (1-200)', int('--limit'), 20).option('--cursor <cursor>').option('--all', 'fetch every page', false)
    .action(act(async (cmd, o) => {
      const { api } = g(cmd)
      const wfs = o.workflow.length ? await Promise.all((o.workflow as string[]).map((w) => workflowId(api, w))) : undefined
      await page(cmd, o, async (cursor) => api.send(api.raw.GET('/v1/runs', { params: { query: defined({
        limit: o.limit, cursor, workflow_id: wfs?.join(','), status: o.status, tag: o.tag, q: o.search, created_after: o.since, created_before: o.until,
      }) } }), 'list runs'), runCols)
    }))
  triggerFlags(runs.command('trigger').description('trigger a run of a workflow').argument('<workflow>', 'workflow id or name')).action(triggerAction)
  runs.command('show').description('a run: status, upstream id, timings, result, error').argument('<run-id>').action(act(async (cmd, runId: string) => {
    const { api } = g(cmd)
    one(cmd, await api.send(api.raw.GET('/v1/runs/{id}', id.path(runId)), 'show run'))
  }))
  runs.command('events').description('a run\'s event history').argument('<run-id>').option('--after <seq>', 'events after this seq', int('--after'))
    .action(act(async (cmd, runId: string, o) => {
      const { api, json } = g(cmd)
      const events: any[] = []
      let after = o.after ?? 0
      for (;;) {
        const p = await api.send(api.raw.GET('/v1/runs/{id}/events', { params: { path: { id: runId }, query: { after, limit: 1000 } } }), 'run events')
        events.push(...p.events)
        if (p.next_after === null) break
        after = p.next_after
      }
      if (json) return void jsonLines(io, events)
      table(io, events, [['seq', (e) => e.seq], ['at', (e) => e.at], ['type', (e) => e.type], ['status', (e) => e.status], ['data', (e) => e.data]])
    }))
  const followCmd = (c: Command) => c.description('follow a run live; exit 0 only if it completed').argument('<run-id>').action(act(async (cmd, runId: string) => {
    const { url, key, json } = g(cmd)
    if (!key) throw new CliError('no API key: pass --key, set RUNRELAY_KEY, or run `runrelay login`')
    return follow(url, key, runId, io, json, await webSocketImpl())
  }))
  followCmd(runs.command('follow').alias('watch'))
  followCmd(program.command('watch'))
  for (const verb of ['cancel', 'pause', 'resume'] as const) {
    runs.command(verb).description(`${verb} a run (exit 3 when its state or the provider does not allow it)`).argument('<run-id>').option('--reason <text>')
      .action(act(async (cmd, runId: string, o) => {
        const { api, json } = g(cmd)
        const r = await api.send(api.raw.POST(`/v1/runs/{id}/${verb}`, { ...id.path(runId), body: defined({ reason: o.reason }) }), verb)
        if (json) return void jsonLines(io, [r])
        io.out(`${r.id} ${r.status}`)
      }))
  }
  withBody(runs.command('input').description('send input to a run waiting for it').argument('<run-id>'))
    .addHelpText('after', '\nThe input is --data (JSON) or --file (JSON/YAML), sent as {"data": …}.')
    .action(act(async (cmd, runId: string, o) => {
      const { api, json } = g(cmd)
      if (!o.data && !o.file) throw new CliError('give the input with --data <json> or --file <path>')
      const data = o.file ? await bodyInput({ file: o.file }, io) : parseJson(o.data, '--data')
      const r = await api.send(api.raw.POST('/v1/runs/{id}/input', { ...id.path(runId), body: { data } as never }), 'input')
      if (json) return void jsonLines(io, [r])
      io.out(`${r.id} ${r.status}`)
    }))
  runs.command('replay').description('trigger the run again: a new run with the same variables and tags').argument('<run-id>').option('-F, --follow', 'follow the new run', false)
    .action(act(async (cmd, runId: string, o) => {
      const { api, json, url, key } = g(cmd)
      const WebSocket = o.follow ? await webSocketImpl() : undefined
      const r = await api.send(api.raw.POST('/v1/runs/{id}/replay', id.path(runId)), 'replay')
      if (json) io.out(JSON.stringify(r))
      else io.out(o.follow ? `run ${r.id} triggered (replay of ${runId})` : r.id)
      return o.follow ? follow(url, key!, r.id, io, json, WebSocket!) : EXIT.ok
    }))

  // ——— schedules ———
  const schedules = program.command('schedules').alias('schedule').description('one-off and cron schedules that trigger runs')
  const schCols: Array<Column<any>> = [['id', (s) => s.id], ['name', (s) => s.name], ['workflow', (s) => s.workflow_id], ['when', (s) => s.cron ?? s.at], ['timezone', (s) => s.timezone], ['state', (s) => s.state], ['next', (s) => s.next_fire_at]]
  paged(schedules.command('list').description('list schedules').option('--workflow <id-or-name>')).action(act(async (cmd, o) => {
    const { api } = g(cmd)
    const wf = o.workflow ? await workflowId(api, o.workflow) : undefined
    await page(cmd, o, async (cursor) => api.send(api.raw.GET('/v1/schedules', { params: { query: defined({ limit: o.limit, cursor, workflow_id: wf }) } }), 'list schedules'), schCols)
  }))
  schedules.command('show').description('a schedule with its next fire times').argument('<schedule-id>').action(act(async (cmd, s: string) => {
    const { api } = g(cmd)
    one(cmd, await api.send(api.raw.GET('/v1/schedules/{id}', id.path(s)), 'show schedule'))
  }))
  const schFlags = (c: Command) => withBody(c).option('--name <name>').option('--cron <expr>', 'five fields: minute hour day month weekday').option('--at <iso>', 'one-off time (without an offset: wall clock in --timezone)')
    .option('--timezone <tz>', 'IANA name, e.g. Europe/Berlin (default UTC)').option('--var <key=value>', 'a template variable (repeatable)', collect, [])
    .option('--tag <tag>', 'a tag for its runs (repeatable)', collect, undefined).addOption(new Option('--misfire <mode>').choices(['run_once', 'skip']))
  const schBody = async (o: any) => ({
    ...await bodyInput(o, io),
    ...defined({ name: o.name, cron: o.cron, at: o.at, timezone: o.timezone, variables: o.var.length ? parseVars(o.var) : undefined, tags: o.tag, misfire: o.misfire }),
  })
  schFlags(schedules.command('create').description('create a schedule').option('--workflow <id-or-name>', 'the workflow to trigger'))
    .addHelpText('after', '\nexample:\n  runrelay schedules create --workflow report --cron "0 3 * * *" --timezone Europe/Berlin --var company=acme')
    .action(act(async (cmd, o) => {
      const { api } = g(cmd)
      const body = { ...await schBody(o), ...(o.workflow && { workflow_id: await workflowId(api, o.workflow) }) }
      one(cmd, await api.send(api.raw.POST('/v1/schedules', { body: body as never }), 'create schedule'))
    }))
  schFlags(schedules.command('update').description('update a schedule (its pending run is replaced)').argument('<schedule-id>')).action(act(async (cmd, s: string, o) => {
    const { api } = g(cmd)
    one(cmd, await api.send(api.raw.PATCH('/v1/schedules/{id}', { ...id.path(s), body: await schBody(o) as never }), 'update schedule'))
  }))
  for (const verb of ['pause', 'resume'] as const) {
    schedules.command(verb).description(`${verb} a schedule`).argument('<schedule-id>').action(act(async (cmd, s: string) => {
      const { api, json } = g(cmd)
      const r = await api.send(api.raw.POST(`/v1/schedules/{id}/${verb}`, id.path(s)), `${verb} schedule`)
      if (json) return void jsonLines(io, [r])
      io.out(`${r.id} ${r.state}`)
    }))
  }
  schedules.command('delete').description('delete a schedule (its pending run is canceled)').argument('<schedule-id>').action(act(async (cmd, s: string) => {
    const { api, json } = g(cmd)
    const d = await api.send(api.raw.DELETE('/v1/schedules/{id}', id.path(s)), 'delete schedule')
    if (json) return void jsonLines(io, [d])
    io.out(`deleted ${d.id}`)
  }))

  // ——— webhooks ———
  const webhooks = program.command('webhooks').alias('webhook').description('outbound webhook endpoints and their delivery log')
  const whCols: Array<Column<any>> = [['id', (e) => e.id], ['url', (e) => e.url], ['workflow', (e) => e.workflow_id ?? '(all)'], ['events', (e) => e.events], ['enabled', (e) => e.enabled]]
  paged(webhooks.command('list').description('list endpoints').option('--workflow <id-or-name>')).action(act(async (cmd, o) => {
    const { api } = g(cmd)
    const wf = o.workflow ? await workflowId(api, o.workflow) : undefined
    await page(cmd, o, async (cursor) => api.send(api.raw.GET('/v1/webhooks', { params: { query: defined({ limit: o.limit, cursor, workflow_id: wf }) } }), 'list webhooks'), whCols)
  }))
  webhooks.command('show').description('an endpoint').argument('<endpoint-id>').action(act(async (cmd, e: string) => {
    const { api } = g(cmd)
    one(cmd, await api.send(api.raw.GET('/v1/webhooks/{id}', id.path(e)), 'show webhook'))
  }))
  const events = (o: { events?: string }) => (o.events === undefined ? undefined : ['terminal', 'status', 'all'].includes(o.events) ? o.events : csvList(o.events))
  // The endpoint's URL is an argument (or --target-url): --url is the server's, for every command.
  withBody(webhooks.command('create').description('create an endpoint; prints its whsec_ signing secret once').argument('[endpoint-url]', 'where to POST (http or https)')
    .option('--workflow <id-or-name>', 'only this workflow\'s runs (default: every workflow)').option('--events <which>', 'terminal (default), status, all, or comma-separated event types')
    .option('--description <text>'))
    .action(act(async (cmd, endpointUrl: string | undefined, o) => {
      const { api, json } = g(cmd)
      const body = { ...await bodyInput(o, io), ...defined({ url: endpointUrl, workflow_id: o.workflow ? await workflowId(api, o.workflow) : undefined, events: events(o), description: o.description }) }
      const e = await api.send(api.raw.POST('/v1/webhooks', { body: body as never }), 'create webhook')
      if (json) return void jsonLines(io, [e])
      io.out(`${e.id} → ${e.url}\nsigning secret (shown once, keep it): ${e.secret}`)
    }))
  withBody(webhooks.command('update').description('update an endpoint (--enable re-enables a disabled one)').argument('<endpoint-id>').option('--target-url <url>', 'a new URL to POST to')
    .option('--events <which>').option('--description <text>').option('--enable', 'enable').option('--disable', 'disable'))
    .action(act(async (cmd, e: string, o) => {
      const { api } = g(cmd)
      const body = { ...await bodyInput(o, io), ...defined({ url: o.targetUrl, events: events(o), description: o.description, enabled: o.enable ? true : o.disable ? false : undefined }) }
      one(cmd, await api.send(api.raw.PATCH('/v1/webhooks/{id}', { ...id.path(e), body: body as never }), 'update webhook'))
    }))
  webhooks.command('rotate-secret').description('a new signing secret (shown once); the old one signs too during the grace period').argument('<endpoint-id>')
    .option('--grace <seconds>', 'how long the old secret keeps signing (default 86400)', int('--grace'))
    .action(act(async (cmd, e: string, o) => {
      const { api, json } = g(cmd)
      const r = await api.send(api.raw.POST('/v1/webhooks/{id}/rotate-secret', { ...id.path(e), body: defined({ grace_period_seconds: o.grace }) as never }), 'rotate secret')
      if (json) return void jsonLines(io, [r])
      io.out(`new signing secret (shown once, keep it): ${r.secret}`)
    }))
  webhooks.command('delete').description('delete an endpoint').argument('<endpoint-id>').action(act(async (cmd, e: string) => {
    const { api, json } = g(cmd)
    const d = await api.send(api.raw.DELETE('/v1/webhooks/{id}', id.path(e)), 'delete webhook')
    if (json) return void jsonLines(io, [d])
    io.out(`deleted ${d.id}`)
  }))
  paged(webhooks.command('deliveries').description('the delivery log, newest first').option('--endpoint <id>').addOption(new Option('--status <s>').choices(['pending', 'succeeded', 'failed']))
    .option('--run <run-id>').option('--event-type <type>'))
    .action(act(async (cmd, o) => {
      const { api } = g(cmd)
      await page(cmd, o, async (cursor) => api.send(api.raw.GET('/v1/webhook-deliveries', { params: { query: defined({ limit: o.limit, cursor, endpoint_id: o.endpoint, status: o.status, run_id: o.run, event_type: o.eventType }) as never } }), 'list deliveries'),
        [['id', (d: any) => d.id], ['endpoint', (d: any) => d.endpoint_id], ['run', (d: any) => d.run_id], ['event', (d: any) => d.event_type], ['status', (d: any) => d.status],
          ['attempts', (d: any) => d.attempts], ['last', (d: any) => d.last_status_code ?? d.last_error], ['created', (d: any) => d.created_at]])
    }))
  webhooks.command('delivery').description('a delivery with its payload and every attempt').argument('<delivery-id>').action(act(async (cmd, d: string) => {
    const { api } = g(cmd)
    one(cmd, await api.send(api.raw.GET('/v1/webhook-deliveries/{id}', id.path(d)), 'show delivery'))
  }))
  webhooks.command('redeliver').description('send a delivery again now (same webhook-id)').argument('<delivery-id>').action(act(async (cmd, d: string) => {
    const { api, json } = g(cmd)
    const r = await api.send(api.raw.POST('/v1/webhook-deliveries/{id}/redeliver', id.path(d)), 'redeliver')
    if (json) return void jsonLines(io, [r])
    io.out(`${r.id} ${r.status} (attempt ${r.attempts + 1} queued)`)
  }))

  // ——— tokens ———
  const tokens = program.command('tokens').alias('token').description('short-lived tokens for browsers')
  tokens.command('create').description('mint a read-only subscriber token, or with --trigger a token that may start runs of one workflow; prints the token')
    .option('--run <run-id>', 'a run it may read (repeatable)', collect, []).option('--workflow <id-or-name>', 'a workflow whose runs it may read (repeatable); with --trigger, the one it may start', collect, [])
    .option('--tag <tag>', 'runs with this tag (repeatable)', collect, []).option('--trigger', 'a trigger token (needs runs:write)', false)
    .option('--max-runs <n>', 'trigger tokens: how many runs it may start (default 1)', int('--max-runs')).option('--ttl <seconds>', 'lifetime (default 900)', int('--ttl'))
    .addHelpText('after', '\nexamples:\n  TOKEN=$(runrelay tokens create --run run_…)\n  runrelay tokens create --trigger --workflow report --max-runs 5 --ttl 600')
    .action(act(async (cmd, o) => {
      const { api, json } = g(cmd)
      const wfs = await Promise.all((o.workflow as string[]).map((w) => workflowId(api, w)))
      if (o.trigger && wfs.length !== 1) throw new CliError('a trigger token needs exactly one --workflow')
      const body = o.trigger
        ? defined({ scope: 'trigger', workflow_id: wfs[0], max_runs: o.maxRuns, ttl_seconds: o.ttl })
        : defined({ scope: 'read', run_ids: o.run.length ? o.run : undefined, workflow_ids: wfs.length ? wfs : undefined, tags: o.tag.length ? o.tag : undefined, ttl_seconds: o.ttl })
      const t = await api.send(api.raw.POST('/v1/tokens', { body: body as never }), 'create token')
      if (json) return void jsonLines(io, [t])
      io.out(t.token)
      if (io.tty) io.err(`(expires ${t.expires_at})`)
    }))

  // ——— anything else ———
  withBody(program.command('api').description('call any route: prints the JSON answer (exit code from its status)').argument('<method>', 'GET, POST, PATCH, DELETE').argument('<path>', 'e.g. /v1/me'))
    .action(act(async (cmd, method: string, path: string, o) => {
      const { api } = g(cmd)
      const body = o.file || o.data ? await bodyInput(o, io) : undefined
      const r = await api.request(method.toUpperCase(), path.startsWith('/') ? path : `/${path}`, body)
      io.out(typeof r.body === 'string' ? r.body : JSON.stringify(r.body, null, g(cmd).json ? 0 : 2))
      return r.status < 400 ? EXIT.ok : exitCodeOfStatus(r.status)
    }))
  program.command('completion').description('print a completion script: eval "$(runrelay completion bash)" (or zsh)').argument('<shell>', 'bash or zsh')
    .action(act(async (_cmd, shell: string) => {
      if (shell !== 'bash' && shell !== 'zsh') throw new CliError('usage: runrelay completion bash|zsh')
      io.out(completionScript(program, shell))
    }))

  try {
    await program.parseAsync(argv, { from: 'user' })
    return exitCode
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.ok : EXIT.usage
    io.err(`runrelay: ${(err as Error).message}`)
    return err instanceof CliError ? err.code : EXIT.usage
  }
}

const exitCodeOfStatus = (status: number) => (status === 401 || status === 403 ? EXIT.auth : status === 404 ? EXIT.notFound : status === 429 || status >= 500 ? EXIT.unavailable : EXIT.refused)

function withServerEnv(o: { port?: string; host?: string; dataDir?: string }, env: Record<string, string | undefined>) {
  return { ...env, ...(o.port && { PORT: o.port }), ...(o.host && { HOST: o.host }), ...(o.dataDir && { RUNRELAY_DATA_DIR: o.dataDir }) }
}

async function serve(o: { port?: string; host?: string; dataDir?: string }, env: Record<string, string | undefined>, io: Io): Promise<number> {
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

/** An id with this prefix, or the id of the one object with that name. */
async function byName(api: Api, idOrName: string, prefix: string, what: string, list: () => Promise<Array<{ id: string; name: string }>>): Promise<string> {
  if (idOrName.startsWith(prefix)) return idOrName
  const matches = (await list()).filter((x) => x.name === idOrName)
  if (matches.length === 1) return matches[0]!.id
  throw new CliError(matches.length ? `several ${what}s are named ${idOrName}: use the id` : `no ${what} ${idOrName}`, matches.length ? EXIT.usage : EXIT.notFound)
}

/** A workflow id, or the id of the workflow with that name. */
const workflowId = (api: Api, idOrName: string) => byName(api, idOrName, 'wf_', 'workflow', async () =>
  (await api.send(api.raw.GET('/v1/workflows', { params: { query: { limit: 200 } } }), 'list workflows')).items)

/** A connection id, or the id of the connection with that name. */
const connectionId = (api: Api, idOrName: string) => byName(api, idOrName, 'con_', 'connection', async () =>
  (await api.send(api.raw.GET('/v1/connections', { params: { query: { limit: 200 } } }), 'list connections')).items)

/** Follow a run with the client SDK: one line per status change, a live progress line on a terminal; the exit code says how it ended. */
async function follow(url: string, key: string, runId: string, io: Io, json: boolean, WebSocket: WebSocketConstructor): Promise<number> {
  let status: RunStatus | undefined
  let progress: number | undefined
  let message = ''
  let frame = 0
  let startedAt: number | undefined
  const line = () => `${SPINNER[frame++ % SPINNER.length]} ${status ?? 'connecting'}${progress !== undefined ? ` ${bar(progress)} ${Math.round(progress * 100)}%` : ''}${message ? `  ${message}` : ''}`
  const spin = io.status && !json ? setInterval(() => io.status!(line()), 100) : undefined
  const print = (text: string) => { if (io.status && !json) io.status(''); io.out(text) }
  let lastPct = -1
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
      } else if (!io.status) {
        // Off a terminal there is no spinner: progress and errors are plain lines of their own.
        if (e.type === 'run.error') print(`${time(e.at)} error: ${String((e.data as { message?: unknown }).message ?? '')}`)
        else if (e.type === 'run.progress' && progress !== undefined && Math.round(progress * 100) !== lastPct) {
          lastPct = Math.round(progress * 100)
          print(`${time(e.at)} progress ${lastPct}%${message ? ` ${message}` : ''}`)
        }
      }
    },
    onStateChange: (s) => { if (s === 'reconnecting' && !json) print('connection lost; reconnecting…') },
  })
  // Ctrl-C stops following (the run goes on) with the conventional code.
  let interrupted = false
  const onSigint = () => { interrupted = true; sub.close() }
  process.once('SIGINT', onSigint)
  try {
    const result = await sub.finished
    if (interrupted) return EXIT.interrupted
    if (result.reason !== 'completed') return EXIT.unavailable
    return result.status === 'completed' ? EXIT.ok : EXIT.runNotCompleted
  } catch (err) {
    if (interrupted) return EXIT.interrupted
    if (err instanceof SubscriptionError) {
      if (err.code === 4004) throw new CliError(`no run ${runId}`, EXIT.notFound)
      if (err.code === 4001 || err.code === 4003) throw new CliError(err.message, EXIT.auth)
      throw new CliError(err.message, EXIT.unavailable)
    }
    throw err
  } finally {
    process.removeListener('SIGINT', onSigint)
    clearInterval(spin)
    if (io.status && !json) io.status('')
  }
}

const bar = (p: number, width = 20) => {
  const n = Math.max(0, Math.min(width, Math.round(p * width)))
  return `[${'#'.repeat(n)}${'-'.repeat(width - n)}]`
}
const time = (iso: string) => new Date(iso).toISOString().slice(11, 19)

// Run directly (`node dist/cli.mjs …`, as in the Docker image) rather than imported by bin/runrelay.mjs.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) process.exitCode = await main(process.argv.slice(2))
