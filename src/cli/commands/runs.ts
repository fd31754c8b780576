import type { Schemas } from '../../../packages/sdk/src/client.ts'
import { type Command, Option } from 'commander'
import { CliError, EXIT } from '../api.ts'
import { follow } from '../follow.ts'
import { fmtDuration, jsonLines, table, type Column } from '../output.ts'
import { collect, int, parseVars, parseJson, bodyInput, defined, withBody, workflowId, workflowOf, workflowOption, webSocketImpl, type BodyOpts, type Ctx, type PagedOpts } from '../shared.ts'

/** The flags of `schedules create|update`. */
type SchOpts = BodyOpts & { name?: string; cron?: string; at?: string; timezone?: string; var: string[]; tag?: string[]; misfire?: string }

/** The commands that trigger, read, follow and command runs, and schedules. */
export function registerRuns(c: Ctx): void {
  const { program, io, g, act, one, page, listShow, id } = c
  // ——— runs ———
  const triggerFlags = (c: Command) => c
    .option('--var <key=value>', 'a template variable (repeatable; JSON values are parsed)', collect, [])
    .option('--tag <tag>', 'a tag for the run (repeatable)', collect, [])
    .option('--idempotency-key <key>', 'the same key and body answer the first run again, never a second one')
    .option('--at <iso>', 'start later (ISO 8601); the run is scheduled until then')
    .option('-F, --follow', 'follow the run live until it ends; exit 0 only if it completed', false)
  const triggerAction = act(async (cmd, workflow: string, o: { var: string[]; tag: string[]; idempotencyKey?: string; at?: string; follow: boolean }) => {
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
  const runCols: Array<Column<Schemas['Run']>> = [['id', (r) => r.id], ['status', (r) => r.status], ['workflow', (r) => r.workflow_id], ['upstream id', (r) => r.upstream_id],
    ['progress', (r) => (typeof r.progress === 'number' ? `${Math.round(r.progress * 100)}%` : '')], ['duration', (r) => fmtDuration(r.duration_ms)], ['created', (r) => r.created_at]]
  runs.command('list').description('list runs, newest first, with the API\'s filters')
    .option('--workflow <id-or-name>', 'a workflow (repeatable)', collect, [])
    .option('--status <list>', 'comma-separated statuses (queued,running,failed,…)').option('--tag <tag>')
    .option('-q, --search <text>', 'a run id, an upstream id or a tag').option('--since <iso>', 'created at or after').option('--until <iso>', 'created before')
    .option('--limit <n>', 'how many per page (1-200)', int('--limit'), 20).option('--cursor <cursor>').option('--all', 'fetch every page', false)
    .action(act(async (cmd, o: PagedOpts & { workflow: string[]; status?: string; tag?: string; search?: string; since?: string; until?: string }) => {
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
    .action(act(async (cmd, runId: string, o: { after?: number }) => {
      const { api, json } = g(cmd)
      const events: Schemas['RunEvent'][] = []
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
      .action(act(async (cmd, runId: string, o: { reason?: string }) => {
        const { api, json } = g(cmd)
        const r = await api.send(api.raw.POST(`/v1/runs/{id}/${verb}`, { ...id.path(runId), body: defined({ reason: o.reason }) }), verb)
        if (json) return void jsonLines(io, [r])
        io.out(`${r.id} ${r.status}`)
      }))
  }
  withBody(runs.command('input').description('send input to a run waiting for it').argument('<run-id>'))
    .addHelpText('after', '\nThe input is --data (JSON) or --file (JSON/YAML), sent as {"data": …}.')
    .action(act(async (cmd, runId: string, o: BodyOpts) => {
      const { api, json } = g(cmd)
      if (!o.data && !o.file) throw new CliError('give the input with --data <json> or --file <path>')
      const data = o.file ? await bodyInput({ file: o.file }, io) : parseJson(o.data!, '--data')
      const r = await api.send(api.raw.POST('/v1/runs/{id}/input', { ...id.path(runId), body: { data } as never }), 'input')
      if (json) return void jsonLines(io, [r])
      io.out(`${r.id} ${r.status}`)
    }))
  runs.command('replay').description('trigger the run again: a new run with the same variables and tags').argument('<run-id>').option('-F, --follow', 'follow the new run', false)
    .action(act(async (cmd, runId: string, o: { follow: boolean }) => {
      const { api, json, url, key } = g(cmd)
      const WebSocket = o.follow ? await webSocketImpl() : undefined
      const r = await api.send(api.raw.POST('/v1/runs/{id}/replay', id.path(runId)), 'replay')
      if (json) io.out(JSON.stringify(r))
      else io.out(o.follow ? `run ${r.id} triggered (replay of ${runId})` : r.id)
      return o.follow ? follow(url, key!, r.id, io, json, WebSocket!) : EXIT.ok
    }))

  // ——— schedules ———
  const schedules = program.command('schedules').alias('schedule').description('one-off and cron schedules that trigger runs')
  listShow<Schemas['Schedule'], { workflow?: string }>(schedules, {
    list: 'list schedules', filters: workflowOption, cols: [['id', (s) => s.id], ['name', (s) => s.name], ['workflow', (s) => s.workflow_id], ['when', (s) => s.cron ?? s.at], ['timezone', (s) => s.timezone], ['state', (s) => s.state], ['next', (s) => s.next_fire_at]],
    pages: async (api, o) => { const wf = await workflowOf(api, o); return async (cursor) => api.send(api.raw.GET('/v1/schedules', { params: { query: defined({ limit: o.limit, cursor, workflow_id: wf }) } }), 'list schedules') },
    show: ['a schedule with its next fire times', '<schedule-id>'], get: async (api, s) => api.send(api.raw.GET('/v1/schedules/{id}', id.path(s)), 'show schedule'),
  })
  const schFlags = (c: Command) => withBody(c).option('--name <name>').option('--cron <expr>', 'five fields: minute hour day month weekday').option('--at <iso>', 'one-off time (without an offset: wall clock in --timezone)')
    .option('--timezone <tz>', 'IANA name, e.g. Europe/Berlin (default UTC)').option('--var <key=value>', 'a template variable (repeatable)', collect, [])
    .option('--tag <tag>', 'a tag for its runs (repeatable)', collect, undefined).addOption(new Option('--misfire <mode>').choices(['run_once', 'skip']))
  const schBody = async (o: SchOpts) => ({
    ...await bodyInput(o, io),
    ...defined({ name: o.name, cron: o.cron, at: o.at, timezone: o.timezone, variables: o.var.length ? parseVars(o.var) : undefined, tags: o.tag, misfire: o.misfire }),
  })
  schFlags(schedules.command('create').description('create a schedule').option('--workflow <id-or-name>', 'the workflow to trigger'))
    .addHelpText('after', '\nexample:\n  runrelay schedules create --workflow report --cron "0 3 * * *" --timezone Europe/Berlin --var company=acme')
    .action(act(async (cmd, o: SchOpts & { workflow?: string }) => {
      const { api } = g(cmd)
      const body = { ...await schBody(o), ...(o.workflow && { workflow_id: await workflowId(api, o.workflow) }) }
      one(cmd, await api.send(api.raw.POST('/v1/schedules', { body: body as never }), 'create schedule'))
    }))
  schFlags(schedules.command('update').description('update a schedule (its pending run is replaced)').argument('<schedule-id>')).action(act(async (cmd, s: string, o: SchOpts) => {
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
}
