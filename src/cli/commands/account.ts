import type { Schemas } from '../../../packages/sdk/src/client.ts'
import type { Command } from 'commander'
import { apiFor, CliError } from '../api.ts'
import { configPath, DEFAULT_URL, readConfig, writeConfig } from '../config.ts'
import { jsonLines, show, type Column, type Io } from '../output.ts'
import { csvList, int, defined, type Ctx, type PagedOpts } from '../shared.ts'

/** Where `serve` and `migrate` put the server (flags over env). */
type ServerOpts = { port?: string; host?: string; dataDir?: string }

function withServerEnv(o: ServerOpts, env: Record<string, string | undefined>) {
  return { ...env, ...(o.port && { PORT: o.port }), ...(o.host && { HOST: o.host }), ...(o.dataDir && { RUNRELAY_DATA_DIR: o.dataDir }) }
}

async function serve(o: ServerOpts, env: Record<string, string | undefined>, io: Io): Promise<number> {
  const { startNode } = await import('../../runtime/node/main.ts')
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

/** The commands for the server, profiles, tenants and keys. */
export function registerAccount(c: Ctx): void {
  const { program, env, io, g, act, page, paged, id } = c
  // ——— server ———
  const server = (c: Command) => c.option('--port <port>', 'port (env PORT)').option('--host <host>', 'address (env HOST)').option('--data-dir <dir>', 'data directory (env RUNRELAY_DATA_DIR)')
  server(program.command('serve').description('start the server (Node; same settings as npm start: PORT, HOST, RUNRELAY_*)'))
    .action(act((_cmd, o: ServerOpts) => serve(o, env, io)))
  server(program.command('migrate').description('apply pending database migrations and exit'))
    .action(act(async (_cmd, o: ServerOpts) => {
      const { migrateOnly } = await import('../../runtime/node/migrate-cli.ts')
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
    .action(act(async (cmd, o: { name: string; retentionDays?: number; withoutKey?: boolean }) => {
      const { api, json } = g(cmd)
      const t = await api.send(api.raw.POST('/v1/tenants', { body: defined({ name: o.name, retention_days: o.retentionDays, create_key: o.withoutKey ? false : undefined }) as never }), 'create tenant')
      if (json) return void jsonLines(io, [t])
      io.out(`tenant ${t.tenant.id} (${t.tenant.name})`)
      if (t.key?.key) io.out(`key ${t.key.key}\n(id ${t.key.id}, scopes ${t.key.scopes.join(',')}; shown once, keep it)`)
    }))
  paged(tenants.command('list').description('list tenants')).action(act(async (cmd, o: PagedOpts) => {
    const { api } = g(cmd)
    await page(cmd, o, async (cursor) => api.send(api.raw.GET('/v1/tenants', { params: { query: { limit: o.limit, cursor } } }), 'list tenants'),
      [['id', (t) => t.id], ['name', (t) => t.name], ['retention days', (t) => t.retention_days], ['created', (t) => t.created_at]])
  }))

  const keys = program.command('keys').description('API keys (an admin key: its tenant\'s; the root key: any tenant\'s with --tenant)')
  const tenant = (c: Command) => c.option('--tenant <id>', "a tenant's keys (root key)")
  const keyCols: Array<Column<Schemas['ApiKey']>> = [['id', (k) => k.id], ['name', (k) => k.name], ['prefix', (k) => k.prefix], ['scopes', (k) => k.scopes], ['last used', (k) => k.last_used_at], ['revoked', (k) => k.revoked_at]]
  tenant(keys.command('create').description('create an API key (shown once)').requiredOption('--name <name>', 'a name for the key')
    .option('--scopes <list>', 'comma-separated: workflows:read,workflows:write,runs:read,runs:write,admin (default: all)'))
    .action(act(async (cmd, o: { name: string; scopes?: string; tenant?: string }) => {
      const { api, json } = g(cmd)
      const body = defined({ name: o.name, scopes: csvList(o.scopes) }) as never
      const k = o.tenant
        ? await api.send(api.raw.POST('/v1/tenants/{id}/keys', { ...id.path(o.tenant), body }), 'create key')
        : await api.send(api.raw.POST('/v1/keys', { body }), 'create key')
      if (json) return void jsonLines(io, [k])
      io.out(`${k.key}\n(id ${k.id}, scopes ${k.scopes.join(',')}; shown once, keep it)`)
    }))
  paged(tenant(keys.command('list').description('list keys (prefixes only)'))).action(act(async (cmd, o: PagedOpts & { tenant?: string }) => {
    const { api } = g(cmd)
    await page(cmd, o, async (cursor) => o.tenant
      ? api.send(api.raw.GET('/v1/tenants/{id}/keys', { params: { path: { id: o.tenant }, query: { limit: o.limit, cursor } } }), 'list keys')
      : api.send(api.raw.GET('/v1/keys', { params: { query: { limit: o.limit, cursor } } }), 'list keys'), keyCols)
  }))
  tenant(keys.command('revoke').description('revoke a key').argument('<key-id>')).action(act(async (cmd, keyId: string, o: { tenant?: string }) => {
    const { api, json } = g(cmd)
    const k = o.tenant
      ? await api.send(api.raw.DELETE('/v1/tenants/{id}/keys/{keyId}', { params: { path: { id: o.tenant, keyId } } }), 'revoke key')
      : await api.send(api.raw.DELETE('/v1/keys/{keyId}', { params: { path: { keyId } } }), 'revoke key')
    if (json) return void jsonLines(io, [k])
    io.out(`revoked ${k.id}`)
  }))
}
