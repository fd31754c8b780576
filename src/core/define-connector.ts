import * as z from 'zod'
import type { CommandName, ConfigValues, Connector, ConnectorContext, RunRef } from './connector.ts'

/**
 * A connector's definition: its typed contract plus the schema of the run state it keeps. The
 * state's type comes from that schema only (NoInfer: not from what `trigger` happens to return).
 */
export interface ConnectorDefinition<Conn, Wf, State> extends Connector<Conn, Wf, NoInfer<State>> {
  /** Schema of the run state (`Observation.state`), parsed before each call that is handed it back. */
  runState: z.ZodType<State>
}

/** The definition of a connector that does not describe its run state: `runState` is untypedState. */
export type UntypedStateDefinition<Conn, Wf> = Omit<ConnectorDefinition<Conn, Wf, ConfigValues>, 'runState'> & { runState?: undefined }

/** A run state the connector does not describe: any JSON object, as stored. */
export const untypedState = z.record(z.string(), z.unknown())

/**
 * The connector the registry and the core hold, from a typed definition. The configs a call
 * sees are its schemas' outputs: each is parsed when first read (a connection-only context,
 * for a connection test or the proxy, has an empty workflow config the connector never reads),
 * once per stored value. The run state is parsed by `runState` before the call (without one,
 * it is any JSON object, as stored).
 */
export function defineConnector<Conn extends ConfigValues, Wf extends ConfigValues, State extends ConfigValues>(def: ConnectorDefinition<Conn, Wf, State>): Connector
export function defineConnector<Conn extends ConfigValues, Wf extends ConfigValues>(def: UntypedStateDefinition<Conn, Wf>): Connector
export function defineConnector<Conn extends ConfigValues, Wf extends ConfigValues, State extends ConfigValues>(def: ConnectorDefinition<Conn, Wf, State> | UntypedStateDefinition<Conn, Wf>): Connector {
  return def.runState ? build(def) : build({ ...def, runState: untypedState })
}

function build<Conn extends ConfigValues, Wf extends ConfigValues, State extends ConfigValues>(def: ConnectorDefinition<Conn, Wf, State>): Connector {
  const conns = new WeakMap<object, Conn>()
  const wfs = new WeakMap<object, Wf>()
  const parsed = <T>(cache: WeakMap<object, T>, schema: z.ZodType<T>, raw: ConfigValues): T => {
    const hit = cache.get(raw)
    if (hit !== undefined) return hit
    const value = schema.parse(raw)
    cache.set(raw, value)
    return value
  }
  const typed = (ctx: ConnectorContext): ConnectorContext<Conn, Wf> => {
    const { connection, workflow } = ctx
    return {
      ...ctx,
      connection: { ...connection, get config() { return parsed(conns, def.connectionConfig, connection.config) } },
      workflow: { ...workflow, get config() { return parsed(wfs, def.workflowConfig, workflow.config) } },
    }
  }
  const ref = (run: RunRef): RunRef<State> => ({ ...run, state: def.runState.parse(run.state) })

  const commands: Connector['commands'] = {}
  for (const name of Object.keys(def.commands ?? {}) as CommandName[]) {
    const fn = def.commands?.[name]
    if (fn) commands[name] = (ctx, run, payload) => fn(typed(ctx), ref(run), payload)
  }
  const { poll, listWorkflows, testConnection, parseCallback, authHeaders, finished, reconcileTrigger, honoursIdempotencyKey } = def
  return {
    provider: def.provider,
    connectionConfig: def.connectionConfig,
    credentials: def.credentials,
    workflowConfig: def.workflowConfig,
    ...(def.inputTemplate ? { inputTemplate: def.inputTemplate } : {}),
    ...(def.defaultPollPolicy ? { defaultPollPolicy: def.defaultPollPolicy } : {}),
    trigger: (ctx, req) => def.trigger(typed(ctx), req),
    ...(poll ? { poll: (ctx, run) => poll(typed(ctx), ref(run)) } : {}),
    ...(def.commands ? { commands } : {}),
    ...(listWorkflows ? { listWorkflows: (ctx) => listWorkflows(typed(ctx)) } : {}),
    ...(testConnection ? { testConnection: (ctx) => testConnection(typed(ctx)) } : {}),
    ...(parseCallback ? { parseCallback: (ctx, run, body) => parseCallback(typed(ctx), ref(run), body) } : {}),
    ...(def.callbackUpstreamId ? { callbackUpstreamId: def.callbackUpstreamId } : {}),
    ...(authHeaders ? { authHeaders: (ctx) => authHeaders(typed(ctx)) } : {}),
    ...(def.matchTrigger ? { matchTrigger: def.matchTrigger } : {}),
    ...(finished ? { finished: (ctx, run) => finished(typed(ctx), ref(run)) } : {}),
    ...(honoursIdempotencyKey === undefined ? {} : { honoursIdempotencyKey: typeof honoursIdempotencyKey === 'function' ? (ctx) => honoursIdempotencyKey(typed(ctx)) : honoursIdempotencyKey }),
    ...(reconcileTrigger ? { reconcileTrigger: (ctx, req) => reconcileTrigger(typed(ctx), req) } : {}),
  }
}
