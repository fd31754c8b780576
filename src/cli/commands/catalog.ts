import type { Schemas } from '../../../packages/sdk/src/client.ts'
import { readFileSync } from 'node:fs'
import { type Command, Option } from 'commander'
import { CliError, EXIT, type Api } from '../api.ts'
import { jsonLines, show, table } from '../output.ts'
import { collect, parseJson, bodyInput, defined, withBody, workflowId, connectionId, type BodyOpts, type Ctx } from '../shared.ts'

/** The flags of `connections create|update`. */
type ConnOpts = BodyOpts & { name?: string; baseUrl?: string; config?: string; rateLimit?: number; credential?: string[]; credentials?: string }
/** The flags of `workflows create|update`. */
type WfOpts = BodyOpts & { name?: string; connection?: string; upstreamId?: string; template?: string; config?: string; poll?: string; tag?: string[]; triggerRetry?: string }

/** The commands for connections and workflows. */
export function registerCatalog(c: Ctx): void {
  const { program, io, g, act, one, listShow, id } = c
  // ——— connections ———
  const connections = program.command('connections').alias('connection').description('upstream credentials and base URLs (secrets are write-only)')
  listShow<Schemas['Connection']>(connections, {
    list: 'list connections', cols: [['id', (c) => c.id], ['name', (c) => c.name], ['provider', (c) => c.provider], ['base url', (c) => c.base_url], ['credentials', (c) => c.credential_fields]],
    pages: async (api, o) => async (cursor) => api.send(api.raw.GET('/v1/connections', { params: { query: { limit: o.limit, cursor } } }), 'list connections'),
    show: ['a connection (credential names only)', '<connection>', 'id or name'], get: async (api, c) => api.send(api.raw.GET('/v1/connections/{id}', id.path(await connectionId(api, c))), 'show connection'),
  })
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
    .action(act(async (cmd, o: ConnOpts & { provider?: string }) => {
      const { api } = g(cmd)
      const body = { ...await bodyInput(o, io), ...defined({ name: o.name, provider: o.provider, base_url: o.baseUrl, config: o.config ? parseJson(o.config, '--config') : undefined, rate_limit_per_second: o.rateLimit, credentials: await credentials(o) }) }
      one(cmd, await api.send(api.raw.POST('/v1/connections', { body: body as never }), 'create connection'))
    }))
  connFlags(connections.command('update').description('update a connection; credentials given are merged (an empty value removes one)').argument('<connection>', 'id or name'))
    .action(act(async (cmd, c: string, o: ConnOpts) => {
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
  listShow<Schemas['Workflow']>(workflows, {
    list: 'list workflows', cols: [['id', (w) => w.id], ['name', (w) => w.name], ['connection', (w) => w.connection_id], ['upstream', (w) => w.upstream_workflow_id], ['tags', (w) => w.tags]],
    pages: async (api, o) => async (cursor) => api.send(api.raw.GET('/v1/workflows', { params: { query: { limit: o.limit, cursor } } }), 'list workflows'),
    show: ['a workflow', '<workflow>', 'id or name'], get: async (api, w) => api.send(api.raw.GET('/v1/workflows/{id}', id.path(await workflowId(api, w))), 'show workflow'),
  })
  const wfFlags = (c: Command) => withBody(c).option('--name <name>').option('--connection <connection>', 'connection id or name')
    .option('--upstream-id <id>', 'the upstream workflow id (see `connections discover`)').option('--template <json>', 'input template as JSON ({{var}} and [[runtime]] placeholders)')
    .option('--config <json>', 'workflow settings as JSON').option('--poll <json>', 'poll policy as JSON (first_interval_ms, max_interval_ms, deadline_ms, …)')
    .option('--tag <tag>', 'a tag (repeatable; replaces the tags)', collect, undefined)
    .addOption(new Option('--trigger-retry <mode>').choices(['at_most_once', 'at_least_once']))
  const wfBody = async (api: Api, o: WfOpts) => ({
    ...await bodyInput(o, io),
    ...defined({
      name: o.name, connection_id: o.connection ? await connectionId(api, o.connection) : undefined, upstream_workflow_id: o.upstreamId,
      input_template: o.template ? parseJson(o.template, '--template') : undefined, config: o.config ? parseJson(o.config, '--config') : undefined,
      poll_policy: o.poll ? parseJson(o.poll, '--poll') : undefined, tags: o.tag, trigger_retry: o.triggerRetry,
    }),
  })
  wfFlags(workflows.command('create').description('create a workflow from flags and/or a JSON or YAML file'))
    .addHelpText('after', '\nexamples:\n  runrelay workflows create --name report --connection acme --upstream-id wf-42 --template \'{"company":"{{company}}"}\'\n  runrelay workflows create -f workflow.yaml')
    .action(act(async (cmd, o: WfOpts) => {
      const { api } = g(cmd)
      one(cmd, await api.send(api.raw.POST('/v1/workflows', { body: await wfBody(api, o) as never }), 'create workflow'))
    }))
  wfFlags(workflows.command('update').description('update a workflow (only the fields given)').argument('<workflow>', 'id or name')).action(act(async (cmd, w: string, o: WfOpts) => {
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
    .action(act(async (cmd, w: string, o: { from?: string; to?: string; bucket?: string }) => {
      const { api } = g(cmd)
      const s = await api.send(api.raw.GET('/v1/workflows/{id}/summary', { params: { path: { id: await workflowId(api, w) }, query: defined({ from: o.from, to: o.to, bucket: o.bucket }) as never } }), 'workflow summary')
      const { timeline: _t, ...rest } = s as Record<string, unknown>
      if (g(cmd).json) jsonLines(io, [s])
      else show(io, rest)
    }))
}
