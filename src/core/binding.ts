import { getConnector } from '../connectors/index.ts'
import type { ConnectionView, Connector, ConnectorContext } from '../connectors/types.ts'
import type { ConnectionRow, RunRow, Store } from '../db/store.ts'
import type { SecretBox } from './crypto.ts'
import { withCredentials } from './outbound.ts'
import { DEFAULT_POLL_POLICY, PollPolicy } from './domain.ts'
import { fitDurations, MAX_SAMPLES, type DurationModel } from './poll-planner.ts'
import { instrumentFetch } from './metrics.ts'
import { noMetrics, noTracer, type BindConnector, type Clock, type Metrics, type Tracer } from './ports.ts'
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
  /** Upstream requests are counted and traced when these are given. */
  metrics?: Metrics
  tracer?: Tracer
}

/** How long a workflow's fitted duration model is reused before it is fitted again from newer runs. */
const DURATION_MODEL_TTL_MS = 60_000

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

/** How long after its run's deadline a callback URL still verifies (a vendor's late final push). */
export const CALLBACK_GRACE_MS = 60 * 60_000
/** The expiry of a run without a deadline's callback URL, counted from its creation. */
const CALLBACK_MAX_LIFE_MS = 8 * 24 * 3_600_000

/** When a run's callback URL stops verifying (ms epoch): its deadline plus a grace period. */
export function callbackExpiry(run: { deadlineAt: number | null; createdAt: number }): number {
  return (run.deadlineAt ?? run.createdAt + CALLBACK_MAX_LIFE_MS) + CALLBACK_GRACE_MS
}

/**
 * The signed callback URL an upstream may POST to for this run, valid until `expiresAt`.
 * The signature covers the run id (the URL's nonce: one per run) and the expiry, so a leaked
 * URL cannot be stretched; the route also refuses it once the run has finished.
 */
export async function callbackUrl(secrets: SecretBox, publicUrl: string, runId: string, expiresAt: number): Promise<string> {
  const exp = Math.ceil(expiresAt / 1000)
  return `${publicUrl.replace(/\/+$/, '')}/v1/callbacks/${runId}?exp=${exp}&sig=${await secrets.sign(`callback:${runId}:${exp}`)}`
}

/** The signed callback URL of a whole connection, for upstreams with one webhook per account. */
export async function connectionCallbackUrl(secrets: SecretBox, publicUrl: string, connectionId: string): Promise<string> {
  return `${publicUrl.replace(/\/+$/, '')}/v1/connections/${connectionId}/callback?sig=${await secrets.sign(`connection-callback:${connectionId}`)}`
}

export function verifyConnectionCallbackSignature(secrets: SecretBox, connectionId: string, sig: string): Promise<boolean> {
  return secrets.verify(`connection-callback:${connectionId}`, sig)
}

/** Whether `sig` signs this run id with this expiry (seconds); the caller checks the expiry against its clock. */
export async function verifyCallbackSignature(secrets: SecretBox, runId: string, sig: string, exp: string | undefined): Promise<boolean> {
  if (!exp || !/^\d{1,12}$/.test(exp)) return false
  return secrets.verify(`callback:${runId}:${exp}`, sig)
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
  const durationModels = new Map<string, { at: number; model: Promise<DurationModel | undefined> }>()

  /** A workflow's duration model, refitted at most once a minute (one indexed query). */
  const durationsOf = (workflowId: string): Promise<DurationModel | undefined> => {
    const now = deps.clock.now()
    const hit = durationModels.get(workflowId)
    if (hit && now - hit.at < DURATION_MODEL_TTL_MS) return hit.model
    const model = deps.store.workflowDurations(workflowId, MAX_SAMPLES).then(fitDurations, () => undefined)
    durationModels.set(workflowId, { at: now, model })
    return model
  }

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
    const view = await viewOf(connection)
    // Every request carries the connection's secret values, so no redirect takes them to another origin.
    const secretValues = Object.values(view.credentials)
    const upstream = deps.metrics || deps.tracer ? instrumentFetch(deps.fetch, connection.provider, deps.metrics ?? noMetrics, deps.tracer ?? noTracer) : deps.fetch
    const fetcher: typeof fetch = async (input, init) => {
      if (rps) await deps.budget.take(connection.id, rps)
      return upstream(input, withCredentials(init, secretValues))
    }
    let cache = connectorCaches.get(connection.id)
    if (!cache) connectorCaches.set(connection.id, (cache = new Map()))
    const ctx: ConnectorContext = {
      fetch: fetcher,
      connection: view,
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
    ctx.otherActiveRuns = async () => (await deps.store.activeRunIdsOfUpstreamWorkflow(connection.id, workflow.upstreamWorkflowId)).filter((id) => id !== run.id)
    ctx.callbackUrl = await callbackUrl(deps.secrets, typeof deps.publicUrl === 'function' ? deps.publicUrl() : deps.publicUrl, run.id, callbackExpiry(run))
    const durations = policy.adaptive && run.upstreamId ? await durationsOf(workflow.id) : undefined
    return { connector, policy, ctx, durations, triggerRetry: workflow.triggerRetry === 'at_least_once' ? 'at_least_once' : 'at_most_once' }
  }
  return { bind, forConnection }
}
