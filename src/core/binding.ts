import { getConnector } from '../connectors/index.ts'
import type { ConnectionView, Connector, ConnectorContext } from '../connectors/types.ts'
import type { ConnectionRow, RunRow, Store } from '../db/store.ts'
import type { SecretBox } from './crypto.ts'
import { DEFAULT_POLL_POLICY, PollPolicy } from './domain.ts'
import type { BindConnector, Clock } from './ports.ts'
import type { RequestBudget } from './rate-budget.ts'

export interface BinderDeps {
  store: Store
  secrets: SecretBox
  /** Outbound fetch with the private-network guard and timeouts. */
  fetch: typeof fetch
  clock: Clock
  budget: RequestBudget
  /** Public base URL of this server, for callback URLs (a function when it is known late). */
  publicUrl: string | (() => string)
}

const policies = new WeakMap<object, { defaults: Connector['defaultPollPolicy']; policy: PollPolicy }>()

/**
 * A workflow's poll policy over its connector's defaults and runrelay's. Parsed once per
 * workflow row (rows come from the read cache, so the same object for a while): not on
 * every trigger and tick. The policy returned is shared: read it, never change it.
 */
export function pollPolicyOf(workflow: { pollPolicy: unknown }, connector: Pick<Connector, 'defaultPollPolicy'>): PollPolicy {
  const key = workflow.pollPolicy
  if (key === null || typeof key !== 'object') return PollPolicy.parse({ ...DEFAULT_POLL_POLICY, ...connector.defaultPollPolicy, ...(key as object | null) })
  const hit = policies.get(key)
  if (hit && hit.defaults === connector.defaultPollPolicy) return hit.policy
  const policy = PollPolicy.parse({ ...DEFAULT_POLL_POLICY, ...connector.defaultPollPolicy, ...key })
  policies.set(key, { defaults: connector.defaultPollPolicy, policy })
  return policy
}

/** The signed callback URL an upstream may POST to for this run. */
export async function callbackUrl(secrets: SecretBox, publicUrl: string, runId: string): Promise<string> {
  return `${publicUrl.replace(/\/+$/, '')}/v1/callbacks/${runId}?sig=${await secrets.sign(`callback:${runId}`)}`
}

/** The signed callback URL of a whole connection, for upstreams with one webhook per account. */
export async function connectionCallbackUrl(secrets: SecretBox, publicUrl: string, connectionId: string): Promise<string> {
  return `${publicUrl.replace(/\/+$/, '')}/v1/connections/${connectionId}/callback?sig=${await secrets.sign(`connection-callback:${connectionId}`)}`
}

export function verifyConnectionCallbackSignature(secrets: SecretBox, connectionId: string, sig: string): Promise<boolean> {
  return secrets.verify(`connection-callback:${connectionId}`, sig)
}

export function verifyCallbackSignature(secrets: SecretBox, runId: string, sig: string): Promise<boolean> {
  return secrets.verify(`callback:${runId}`, sig)
}

export interface Binder {
  /** A run's connector, context and poll policy. */
  bind: BindConnector
  /** A connection's connector and a context without a workflow (connection test, discovery, proxy). */
  forConnection(connection: ConnectionRow): Promise<{ connector: Connector; ctx: ConnectorContext }>
}

/** Resolves connectors and their contexts (credentials decrypted once per connection version). */
export function createBinder(deps: BinderDeps): Binder {
  const credentialCache = new Map<string, { updatedAt: number; view: ConnectionView }>()
  const connectorCaches = new Map<string, Map<string, unknown>>()

  const viewOf = async (c: ConnectionRow): Promise<ConnectionView> => {
    const hit = credentialCache.get(c.id)
    if (hit && hit.updatedAt === c.updatedAt) return hit.view
    const view: ConnectionView = {
      id: c.id, provider: c.provider, baseUrl: c.baseUrl, config: c.config,
      credentials: await deps.secrets.decrypt<Record<string, string>>(c.secret),
    }
    credentialCache.set(c.id, { updatedAt: c.updatedAt, view })
    return view
  }

  const forConnection = async (connection: ConnectionRow) => {
    const connector = getConnector(connection.provider)
    if (!connector) throw new Error(`unknown provider ${connection.provider}`)
    const rps = connection.rateLimitPerSecond
    const fetcher: typeof fetch = rps
      ? async (input, init) => { await deps.budget.take(connection.id, rps); return deps.fetch(input, init) }
      : deps.fetch
    let cache = connectorCaches.get(connection.id)
    if (!cache) connectorCaches.set(connection.id, (cache = new Map()))
    const ctx: ConnectorContext = {
      fetch: fetcher,
      connection: await viewOf(connection),
      workflow: { id: '', upstreamWorkflowId: '', config: {} },
      callbackUrl: '',
      now: () => deps.clock.now(),
      cache,
    }
    return { connector, ctx }
  }

  const bind: BindConnector = async (run: RunRow) => {
    const workflow = await deps.store.getWorkflow(run.tenantId, run.workflowId)
    if (!workflow) throw new Error(`workflow ${run.workflowId} of run ${run.id} is gone`)
    const connection = await deps.store.getConnection(run.tenantId, workflow.connectionId)
    if (!connection) throw new Error(`connection ${workflow.connectionId} of run ${run.id} is gone`)
    const { connector, ctx } = await forConnection(connection)
    const policy = pollPolicyOf(workflow, connector)
    ctx.workflow = { id: workflow.id, upstreamWorkflowId: workflow.upstreamWorkflowId, config: workflow.config }
    ctx.callbackUrl = await callbackUrl(deps.secrets, typeof deps.publicUrl === 'function' ? deps.publicUrl() : deps.publicUrl, run.id)
    return { connector, policy, ctx, triggerRetry: workflow.triggerRetry === 'at_least_once' ? 'at_least_once' : 'at_most_once' }
  }
  return { bind, forConnection }
}
