import { readFileSync } from 'node:fs'
import { Command } from 'commander'
import type { WebSocketConstructor } from '../client/index.ts'
import { apiFor, CliError, EXIT, type Api } from './api.ts'
import { resolveTarget } from './config.ts'
import { jsonLines, show, table, type Column, type Io } from './output.ts'

/*
 * What every command group of the CLI shares (src/cli/commands/): the context of one `main`
 * call, option parsers, bodies from files and flags, and names resolved to ids.
 */

/** The global options as one command sees them, with the API client made on first use. */
export type G = { api: Api; json: boolean; url: string; key?: string }

/** The -f/--file and -d/--data options (see withBody). */
export interface BodyOpts { file?: string; data?: string }

/** Options of a command that lists a page (or every page with --all). */
export interface PagedOpts { limit?: number; cursor?: string; all?: boolean }

/** The context of one `main` call, given to each command group. */
export interface Ctx {
  program: Command
  env: Record<string, string | undefined>
  io: Io
  g: (cmd: Command) => G
  /** An action that resolves to its exit code; the last argument commander passes is the command. */
  act: <A extends unknown[]>(fn: (cmd: Command, ...args: A) => Promise<number | void>) => (...args: unknown[]) => Promise<void>
  /** Print one object: JSON line, or `field value` lines. */
  one: (cmd: Command, obj: unknown, fields?: string[]) => void
  /** Print a page (or every page with --all) as a table or JSON lines. */
  page: <T>(cmd: Command, o: PagedOpts, fetchPage: (cursor?: string) => Promise<{ items: T[]; next_cursor: string | null }>, cols: Array<Column<T>>) => Promise<void>
  paged: (c: Command) => Command
  /** The `list` and `show <arg>` commands a resource group opens with (see ListShow). */
  listShow: <T, O extends object = object>(group: Command, spec: ListShow<T, O>) => void
  id: { path: (v: string) => { params: { path: { id: string } } } }
}

/** A page of a list route's answer. */
type PageOf<T> = { items: T[]; next_cursor: string | null }

/**
 * A resource group's `list` (its filters, then the paging flags; a table of `cols` or JSON
 * lines) and `show <arg>` (one object).
 */
export interface ListShow<T, O> {
  list: string
  filters?: (c: Command) => Command
  /** The page fetcher of one `list` call: names given as filters are resolved to ids here, once. */
  pages: (api: Api, o: PagedOpts & O) => Promise<(cursor?: string) => Promise<PageOf<T>>>
  cols: Array<Column<T>>
  /** `show`'s description, argument and the argument's description. */
  show: [description: string, argument: string, about?: string]
  get: (api: Api, arg: string) => Promise<unknown>
}

/** The context of one `main` call; `setExit` receives each action's exit code. */
export function makeContext(program: Command, env: Record<string, string | undefined>, io: Io, setExit: (code: number) => void): Ctx {
  const g = (cmd: Command): G => {
    const o = cmd.optsWithGlobals() as { url?: string; key?: string; profile?: string; json: boolean }
    const target = resolveTarget(o, env)
    let api: Api | undefined
    return { json: o.json, url: target.url, key: target.key, get api() { return (api ??= apiFor(target.url, target.key)) } }
  }
  const act = <A extends unknown[]>(fn: (cmd: Command, ...args: A) => Promise<number | void>) => async (...args: unknown[]) => {
    const cmd = args[args.length - 1] as Command
    // Commander passes the arguments and options the command declares, as its action types them.
    setExit((await fn(cmd, ...(args.slice(0, -1) as A))) ?? EXIT.ok)
  }
  /** Print one object: JSON line, or `field value` lines. */
  const one = (cmd: Command, obj: unknown, fields?: string[]) => {
    if (g(cmd).json) jsonLines(io, [obj])
    else show(io, obj as Record<string, unknown>, fields)
  }
  /** Print a page (or every page with --all) as a table or JSON lines. */
  const page = async <T>(cmd: Command, o: PagedOpts, fetchPage: (cursor?: string) => Promise<{ items: T[]; next_cursor: string | null }>, cols: Array<Column<T>>) => {
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
  const listShow = <T, O extends object = object>(group: Command, spec: ListShow<T, O>) => {
    paged((spec.filters ?? ((c) => c))(group.command('list').description(spec.list))).action(act(async (cmd, o: PagedOpts & O) => {
      await page(cmd, o, await spec.pages(g(cmd).api, o), spec.cols)
    }))
    group.command('show').description(spec.show[0]).argument(spec.show[1], spec.show[2]).action(act(async (cmd, arg: string) => {
      one(cmd, await spec.get(g(cmd).api, arg))
    }))
  }
  const id = { path: (v: string) => ({ params: { path: { id: v } } }) }
  return { program, env, io, g, act, one, page, paged, listShow, id }
}

/** The WebSocket the client uses: the global one (Node 22+, Deno, Bun), else the `ws` package (Node 20). */
export async function webSocketImpl(): Promise<WebSocketConstructor> {
  const global = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket
  if (global) return global
  try {
    return (await import('ws')).WebSocket as WebSocketConstructor
  } catch {
    throw new CliError(`Node ${process.versions.node} has no global WebSocket and the ws package is missing: npm install ws (or use Node 22+)`)
  }
}

/** Commander's collector of a repeatable option. */
export const collect = (value: string, previous: string[] = []) => [...previous, value]
/** A comma-separated list, trimmed (undefined when not given). */
export const csvList = (v: string | undefined) => (v ? v.split(',').map((s) => s.trim()).filter(Boolean) : undefined)
/** A parser of whole numbers for option `name`. */
export const int = (name: string) => (v: string) => {
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

/** JSON from `where`, or a CliError saying where it is wrong. */
export const parseJson = (text: string, where: string): unknown => {
  try { return JSON.parse(text) } catch (err) { throw new CliError(`${where} is not valid JSON: ${(err as Error).message}`) }
}

/** A body from `-f <file|->` (JSON, or YAML by extension or content) and `-d <json>`; `-d` wins field by field. */
export async function bodyInput(o: { file?: string; data?: string }, io: Io): Promise<Record<string, unknown>> {
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
export const defined = (o: Record<string, unknown>) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined))

/** The -f/--file and -d/--data options of a command that sends a body. */
export const withBody = (c: Command) => c
  .option('-f, --file <path>', 'the body as a JSON or YAML file (- reads stdin)')
  .option('-d, --data <json>', 'the body as JSON (fields override --file)')

/** The exit code of an HTTP status (`runrelay api`). */
export const exitCodeOfStatus = (status: number) => (status === 401 || status === 403 ? EXIT.auth : status === 404 ? EXIT.notFound : status === 429 || status >= 500 ? EXIT.unavailable : EXIT.refused)

/** An id with this prefix, or the id of the one object with that name. */
async function byName(api: Api, idOrName: string, prefix: string, what: string, list: () => Promise<Array<{ id: string; name: string }>>): Promise<string> {
  if (idOrName.startsWith(prefix)) return idOrName
  const matches = (await list()).filter((x) => x.name === idOrName)
  if (matches.length === 1) return matches[0]!.id
  throw new CliError(matches.length ? `several ${what}s are named ${idOrName}: use the id` : `no ${what} ${idOrName}`, matches.length ? EXIT.usage : EXIT.notFound)
}

/** A workflow id, or the id of the workflow with that name. */
export const workflowId = (api: Api, idOrName: string) => byName(api, idOrName, 'wf_', 'workflow', async () =>
  (await api.send(api.raw.GET('/v1/workflows', { params: { query: { limit: 200 } } }), 'list workflows')).items)

/** A list's `--workflow <id-or-name>` filter (ListShow.filters). */
export const workflowOption = (c: Command) => c.option('--workflow <id-or-name>')

/** The workflow id `--workflow` names, or undefined when it is not given. */
export const workflowOf = async (api: Api, o: { workflow?: string }) => (o.workflow ? workflowId(api, o.workflow) : undefined)

/** A connection id, or the id of the connection with that name. */
export const connectionId = (api: Api, idOrName: string) => byName(api, idOrName, 'con_', 'connection', async () =>
  (await api.send(api.raw.GET('/v1/connections', { params: { query: { limit: 200 } } }), 'list connections')).items)

