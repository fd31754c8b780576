import { header, IdempotencyStore, isObject, nextInScript, startFakeServer, type FakeCommonOptions, type FakeReply, type FakeServer } from './common.ts'

/**
 * Fake Interactly workflow-runs API (as docs/connectors.md describes it).
 *
 * - `Authorization: Bearer <token>`; missing/wrong → 401 {detail: "Invalid API key"} (errors are not
 *   on the page; the page's "Successful Response" wording is FastAPI's, so the fake answers FastAPI
 *   style: {detail} bodies and 422 {detail: [{loc, msg, type}]} for validation).
 * - POST /workflows/v1/workflow-runs {command (default start), workflow_id, workflow_run_id,
 *   dynamic_variables, runtime_variables, miscellaneous, thread_to_node_inputs} → 200 {workflow_run}:
 *   - start: workflow_id must be 24 hex (422), known when `workflows` is given (404); creates a run with
 *     status `not_started` and a first input/output pair whose events are [{type: "run_created"}].
 *   - data / pause / resume / stop: workflow_run_id must be 24 hex (422) and exist (404). Every call
 *     appends an input/output pair (as the README says). data echoes [{type: "data_received", ...}];
 *     pause → `paused`; resume → `running`; stop → `stopped` (the stop word is not on the page). A
 *     command on a finished run → 409 {detail}.
 * - GET /workflows/v1/workflow-runs/{id} → the same run model. NOT on the page: the most plausible
 *   read endpoint, provided so the connector's default poll has something to read.
 *
 * Progression: `advance(id, status, events?)` sets the status and appends events to the last pair's
 * output; or `script` (each GET moves one step along it, e.g. ['not_started', 'running', 'completed']).
 */

export interface IxRun {
  team_id: string
  created_by: string
  updated_by: string
  created_at: string
  updated_at: string
  _id: string
  workflow_run: {
    logical_id: string
    workflow_id: string
    status: string
    input_output_pairs: Array<{ run_input: Record<string, unknown>; run_output: { events: unknown[]; thread_to_node_outputs: Record<string, unknown> } }>
    comments: unknown[]
    error?: string
  }
}

export interface FakeInteractlyOptions extends FakeCommonOptions {
  token?: string
  workflows?: string[]
  script?: string[]
}

export interface FakeInteractly extends FakeServer {
  state: { runs: Map<string, IxRun>; triggers: number; commands: Array<{ command: string; workflow_run_id?: string }> }
  advance(id: string, status: string, events?: unknown[], threadOutputs?: Record<string, unknown>): IxRun
}

const HEX24 = /^[0-9a-f]{24}$/i
const FINAL = new Set(['completed', 'failed', 'stopped'])

export async function startFakeInteractly(opts: FakeInteractlyOptions = {}): Promise<FakeInteractly> {
  const token = opts.token ?? 'ix-token'
  const runs = new Map<string, IxRun>()
  const commands: FakeInteractly['state']['commands'] = []
  const idem = new IdempotencyStore()
  let seq = 0
  let triggers = 0

  const invalid = (loc: string, msg: string): FakeReply => ({ status: 422, body: { detail: [{ loc: ['body', loc], msg, type: 'value_error' }] } })
  const touch = (run: IxRun) => { run.updated_at = new Date().toISOString() }
  const runInput = (b: Record<string, unknown>) => ({
    dynamic_variables: b.dynamic_variables ?? {}, runtime_variables: b.runtime_variables ?? {}, miscellaneous: b.miscellaneous ?? {},
    command: b.command ?? 'start', workflow_id: b.workflow_id ?? null, workflow_run_id: b.workflow_run_id ?? null, thread_to_node_inputs: b.thread_to_node_inputs ?? {},
  })

  const server = await startFakeServer(async (req): Promise<FakeReply> => {
    if (header(req, 'authorization') !== `Bearer ${token}`) return { status: 401, body: { detail: 'Invalid API key' } }
    if (req.method === 'POST' && req.path === '/workflows/v1/workflow-runs') {
      const b = isObject(req.body) ? req.body : {}
      const command = b.command ?? 'start'
      if (!['start', 'data', 'resume', 'pause', 'stop'].includes(String(command))) return invalid('command', "Input should be 'start', 'data', 'resume', 'pause' or 'stop'")
      for (const k of ['dynamic_variables', 'runtime_variables', 'miscellaneous', 'thread_to_node_inputs']) {
        if (b[k] !== undefined && !isObject(b[k])) return invalid(k, 'Input should be a valid dictionary')
      }
      commands.push({ command: String(command), workflow_run_id: typeof b.workflow_run_id === 'string' ? b.workflow_run_id : undefined })
      if (command === 'start') {
        if (typeof b.workflow_id !== 'string' || !HEX24.test(b.workflow_id)) return invalid('workflow_id', 'String should have at least 24 characters')
        if (opts.workflows && !opts.workflows.includes(b.workflow_id)) return { status: 404, body: { detail: 'Workflow not found' } }
        return idem.handle(req, () => {
          triggers++
          const now = new Date().toISOString()
          const id = (0x5eb7cf5a00 + ++seq).toString(16).padStart(24, '0')
          const run: IxRun = {
            team_id: 'team_1', created_by: 'api', updated_by: 'api', created_at: now, updated_at: now, _id: id,
            workflow_run: {
              logical_id: `run-${seq}`, workflow_id: b.workflow_id as string, status: 'not_started',
              input_output_pairs: [{ run_input: runInput(b), run_output: { events: [{ type: 'run_created' }], thread_to_node_outputs: {} } }],
              comments: [],
            },
          }
          runs.set(id, run)
          return { status: 200, body: { workflow_run: run } }
        })
      }
      if (typeof b.workflow_run_id !== 'string' || !HEX24.test(b.workflow_run_id)) return invalid('workflow_run_id', 'String should have at least 24 characters')
      const run = runs.get(b.workflow_run_id)
      if (!run) return { status: 404, body: { detail: 'Workflow run not found' } }
      if (FINAL.has(run.workflow_run.status)) return { status: 409, body: { detail: `Workflow run is ${run.workflow_run.status}` } }
      const events: unknown[] = []
      if (command === 'data') events.push({ type: 'data_received', thread_to_node_inputs: b.thread_to_node_inputs ?? {} })
      if (command === 'pause') { run.workflow_run.status = 'paused'; events.push({ type: 'paused' }) }
      if (command === 'resume') { run.workflow_run.status = 'running'; events.push({ type: 'resumed' }) }
      if (command === 'stop') { run.workflow_run.status = 'stopped'; events.push({ type: 'stopped' }) }
      run.workflow_run.input_output_pairs.push({ run_input: runInput(b), run_output: { events, thread_to_node_outputs: {} } })
      touch(run)
      return { status: 200, body: { workflow_run: run } }
    }
    const m = /^\/workflows\/v1\/workflow-runs\/([^/]+)$/.exec(req.path)
    if (req.method === 'GET' && m) {
      const run = runs.get(m[1])
      if (!run) return { status: 404, body: { detail: 'Workflow run not found' } }
      if (opts.script) run.workflow_run.status = nextInScript(opts.script, run.workflow_run.status)
      return { status: 200, body: { workflow_run: run } }
    }
    return { status: 404, body: { detail: 'Not Found' } }
  }, opts)

  return Object.assign(server, {
    state: { runs, get triggers() { return triggers }, commands },
    advance(id: string, status: string, events: unknown[] = [], threadOutputs?: Record<string, unknown>) {
      const run = runs.get(id)
      if (!run) throw new Error(`no run ${id}`)
      run.workflow_run.status = status
      const last = run.workflow_run.input_output_pairs.at(-1)!
      last.run_output.events.push(...events)
      if (threadOutputs) Object.assign(last.run_output.thread_to_node_outputs, threadOutputs)
      touch(run)
      return run
    },
  })
}
