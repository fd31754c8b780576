import type { Schemas } from '../../../packages/sdk/src/client.ts'
import { Option } from 'commander'
import { CliError, EXIT } from '../api.ts'
import { completionScript } from '../completion.ts'
import { jsonLines } from '../output.ts'
import { collect, csvList, int, bodyInput, defined, withBody, workflowId, workflowOf, workflowOption, exitCodeOfStatus, type BodyOpts, type Ctx, type PagedOpts } from '../shared.ts'

/** The commands for webhooks and tokens, any route (`api`), and completion scripts. */
export function registerDelivery(c: Ctx): void {
  const { program, io, g, act, one, page, paged, listShow, id } = c
  // ——— webhooks ———
  const webhooks = program.command('webhooks').alias('webhook').description('outbound webhook endpoints and their delivery log')
  listShow<Schemas['WebhookEndpoint'], { workflow?: string }>(webhooks, {
    list: 'list endpoints', filters: workflowOption, cols: [['id', (e) => e.id], ['url', (e) => e.url], ['workflow', (e) => e.workflow_id ?? '(all)'], ['events', (e) => e.events], ['enabled', (e) => e.enabled]],
    pages: async (api, o) => { const wf = await workflowOf(api, o); return async (cursor) => api.send(api.raw.GET('/v1/webhooks', { params: { query: defined({ limit: o.limit, cursor, workflow_id: wf }) } }), 'list webhooks') },
    show: ['an endpoint', '<endpoint-id>'], get: async (api, e) => api.send(api.raw.GET('/v1/webhooks/{id}', id.path(e)), 'show webhook'),
  })
  const events = (o: { events?: string }) => (o.events === undefined ? undefined : ['terminal', 'status', 'all'].includes(o.events) ? o.events : csvList(o.events))
  // The endpoint's URL is an argument (or --target-url): --url is the server's, for every command.
  withBody(webhooks.command('create').description('create an endpoint; prints its whsec_ signing secret once').argument('[endpoint-url]', 'where to POST (http or https)')
    .option('--workflow <id-or-name>', 'only this workflow\'s runs (default: every workflow)').option('--events <which>', 'terminal (default), status, all, or comma-separated event types')
    .option('--description <text>'))
    .action(act(async (cmd, endpointUrl: string | undefined, o: BodyOpts & { workflow?: string; events?: string; description?: string }) => {
      const { api, json } = g(cmd)
      const body = { ...await bodyInput(o, io), ...defined({ url: endpointUrl, workflow_id: o.workflow ? await workflowId(api, o.workflow) : undefined, events: events(o), description: o.description }) }
      const e = await api.send(api.raw.POST('/v1/webhooks', { body: body as never }), 'create webhook')
      if (json) return void jsonLines(io, [e])
      io.out(`${e.id} → ${e.url}\nsigning secret (shown once, keep it): ${e.secret}`)
    }))
  withBody(webhooks.command('update').description('update an endpoint (--enable re-enables a disabled one)').argument('<endpoint-id>').option('--target-url <url>', 'a new URL to POST to')
    .option('--events <which>').option('--description <text>').option('--enable', 'enable').option('--disable', 'disable'))
    .action(act(async (cmd, e: string, o: BodyOpts & { targetUrl?: string; events?: string; description?: string; enable?: boolean; disable?: boolean }) => {
      const { api } = g(cmd)
      const body = { ...await bodyInput(o, io), ...defined({ url: o.targetUrl, events: events(o), description: o.description, enabled: o.enable ? true : o.disable ? false : undefined }) }
      one(cmd, await api.send(api.raw.PATCH('/v1/webhooks/{id}', { ...id.path(e), body: body as never }), 'update webhook'))
    }))
  webhooks.command('rotate-secret').description('a new signing secret (shown once); the old one signs too during the grace period').argument('<endpoint-id>')
    .option('--grace <seconds>', 'how long the old secret keeps signing (default 86400)', int('--grace'))
    .action(act(async (cmd, e: string, o: { grace?: number }) => {
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
    .action(act(async (cmd, o: PagedOpts & { endpoint?: string; status?: string; run?: string; eventType?: string }) => {
      const { api } = g(cmd)
      await page(cmd, o, async (cursor) => api.send(api.raw.GET('/v1/webhook-deliveries', { params: { query: defined({ limit: o.limit, cursor, endpoint_id: o.endpoint, status: o.status, run_id: o.run, event_type: o.eventType }) as never } }), 'list deliveries'),
        [['id', (d) => d.id], ['endpoint', (d) => d.endpoint_id], ['run', (d) => d.run_id], ['event', (d) => d.event_type], ['status', (d) => d.status],
          ['attempts', (d) => d.attempts], ['last', (d) => d.last_status_code ?? d.last_error], ['created', (d) => d.created_at]])
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
    .action(act(async (cmd, o: { run: string[]; workflow: string[]; tag: string[]; trigger: boolean; maxRuns?: number; ttl?: number }) => {
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
    .action(act(async (cmd, method: string, path: string, o: BodyOpts) => {
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
}
