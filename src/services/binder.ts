import { getConnector } from '../connectors/index.ts'
import { callbackExpiry, callbackUrl, pollPolicyOf } from '../core/binding.ts'
import { setNewest } from '../core/bounded-map.ts'
import type { ConnectionView, Connector, ConnectorContext } from '../core/connector.ts'
import type { SecretBox } from '../core/crypto.ts'
import { instrumentFetch } from '../core/metrics.ts'
import { withCredentials } from '../core/outbound.ts'
import { fitDurations, MAX_SAMPLES, type DurationModel } from '../core/poll-planner.ts'
import { noMetrics, noTracer, type BindConnector, type Clock, type ConnectorBinding, type Metrics, type Tracer } from '../core/ports.ts'
import type { RequestBudget } from '../core/rate-budget.ts'
import type { ConnectionRow, RunRow, Store } from '../db/store.ts'

export interface BinderDeps {
  store: Store
  secrets: SecretBox
  /** Outbound fetch with the private-network guard and timeouts. */
  fetch: typeof fetch
  clock: Clock
  budget: RequestBudget
  /** Public base URL of this server, for callback URLs (a function when it is known late). */
  publicUrl: string | (() => string)
  /** Bytes of one upstream answer read before it is cut off (RUNRELAY_MAX_UPSTREAM_BODY_BYTES); the connectors' default when absent. */
  maxAnswerBytes?: number
  /** Upstream requests are counted and traced when these are given. */
  metrics?: Metrics
  tracer?: Tracer
}

/** How long a workflow's fitted duration model is reused before it is fitted again from newer runs. */
const DURATION_MODEL_TTL_MS = 60_000
/**
 * Runs whose binding is kept between ticks (about 1 KB each), the first built dropped first (a
 * run in flight is bound again as soon as it ticks): building one each tick (a context, a fetch wrapper, an HMAC-signed callback URL) was
 * ~6% of what a poll allocates (issue 26).
 */
const MAX_KEPT_BINDINGS = 10_000

export interface Binder {
  /** A run's connector, context and poll policy. */
  bind: BindConnector
  /** Forget the binding kept for a run (it has finished): otherwise it stays until MAX_KEPT_BINDINGS newer ones push it out. */
  unbind(runId: string): void
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
    const model = deps.store.runs.workflowDurations(workflowId, MAX_SAMPLES).then(fitDurations, () => undefined)
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
      maxAnswerBytes: deps.maxAnswerBytes,
    }
    return { connector, ctx }
  }

  /** Each run's last binding and what it was built from (the rows' versions, the callback URL's inputs). */
  const kept = new Map<string, { workflowAt: number; connectionId: string; connectionAt: number; expiry: number; publicUrl: string; binding: ConnectorBinding }>()

  const bind: BindConnector = async (run: RunRow) => {
    const workflow = await deps.store.catalog.getWorkflow(run.tenantId, run.workflowId)
    if (!workflow) throw new Error(`workflow ${run.workflowId} of run ${run.id} is gone`)
    const connection = await deps.store.catalog.getConnection(run.tenantId, workflow.connectionId)
    if (!connection) throw new Error(`connection ${workflow.connectionId} of run ${run.id} is gone`)
    const publicUrl = typeof deps.publicUrl === 'function' ? deps.publicUrl() : deps.publicUrl
    const expiry = callbackExpiry(run)
    const last = kept.get(run.id)
    let binding = last && last.workflowAt === workflow.updatedAt && last.connectionId === connection.id && last.connectionAt === connection.updatedAt
      && last.expiry === expiry && last.publicUrl === publicUrl ? last.binding : undefined
    if (!binding) {
      const { connector, ctx } = await forConnection(connection)
      const policy = pollPolicyOf(workflow, connector)
      ctx.workflow = { id: workflow.id, upstreamWorkflowId: workflow.upstreamWorkflowId, config: workflow.config, hasInputTemplate: workflow.inputTemplate !== null && workflow.inputTemplate !== undefined }
      ctx.otherActiveRuns = async () => (await deps.store.runs.activeIdsOfUpstreamWorkflow(connection.id, workflow.upstreamWorkflowId)).filter((id) => id !== run.id)
      ctx.callbackUrl = await callbackUrl(deps.secrets, publicUrl, run.id, expiry)
      binding = { connector, policy, ctx, triggerRetry: workflow.triggerRetry === 'at_least_once' ? 'at_least_once' : 'at_most_once' }
      setNewest(kept, run.id, { workflowAt: workflow.updatedAt, connectionId: connection.id, connectionAt: connection.updatedAt, expiry, publicUrl, binding }, MAX_KEPT_BINDINGS)
    }
    const durations = binding.policy.adaptive && run.upstreamId ? await durationsOf(workflow.id) : undefined
    return durations ? { ...binding, durations } : binding
  }
  return { bind, unbind: (runId) => { kept.delete(runId) }, forConnection }
}
