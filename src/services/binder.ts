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
 * Runs whose binding is kept between ticks (a context object and a callback URL, a few hundred bytes each), the first built dropped first (a
 * run in flight is bound again as soon as it ticks): building one each tick (a context, a fetch wrapper, an HMAC-signed callback URL) was
 * ~6% of what a poll allocates (issue 26).
 */
const MAX_KEPT_BINDINGS = 10_000
/**
 * Connection versions whose shared context parts are kept (see `bases`), the least recently built
 * dropped first; also the bound on connectors' caches (one per connection) and on duration models
 * (one per workflow, the least recently fitted dropped first): each is built again when needed.
 */
const MAX_CONNECTION_BASES = 1_024

export interface Binder {
  /** A run's connector, context and poll policy. */
  bind: BindConnector
  /** Forget the binding kept for a run (it has finished): otherwise it stays until MAX_KEPT_BINDINGS newer ones push it out. */
  unbind(runId: string): void
  /** A connection's connector and a context without a workflow (connection test, discovery, proxy). */
  forConnection(connection: ConnectionRow): Promise<{ connector: Connector; ctx: ConnectorContext }>
}

/** A connection version's connector and the context parts all its runs share. */
interface ConnectionBase { updatedAt: number; connector: Connector; fetch: typeof fetch; view: ConnectionView; cache: Map<string, unknown> }

/** Resolves connectors and their contexts (credentials decrypted once per connection version). */
export function createBinder(deps: BinderDeps): Binder {
  const connectorCaches = new Map<string, Map<string, unknown>>()
  const durationModels = new Map<string, { at: number; model: Promise<DurationModel | undefined> }>()

  /** A workflow's duration model, refitted at most once a minute (one indexed query). */
  const durationsOf = (workflowId: string): Promise<DurationModel | undefined> => {
    const now = deps.clock.now()
    const hit = durationModels.get(workflowId)
    if (hit && now - hit.at < DURATION_MODEL_TTL_MS) return hit.model
    const model = deps.store.runs.workflowDurations(workflowId, MAX_SAMPLES).then(fitDurations, () => undefined)
    setNewest(durationModels, workflowId, { at: now, model }, MAX_CONNECTION_BASES)
    return model
  }

  /**
   * Each connection version's base: the credentials decrypted once, the instrumented fetch (its
   * closures), the connector's cache. A binding's context refers to them and adds its run's own
   * parts (workflow, callback URL), so a run in flight keeps one small object, not its own
   * closures (issue 26: memory per run).
   */
  const bases = new Map<string, ConnectionBase>()
  const now = () => deps.clock.now()

  const baseOf = async (connection: ConnectionRow): Promise<ConnectionBase> => {
    const hit = bases.get(connection.id)
    if (hit && hit.updatedAt === connection.updatedAt) return hit
    const connector = getConnector(connection.provider)
    if (!connector) throw new Error(`unknown provider ${connection.provider}`)
    const rps = connection.rateLimitPerSecond
    const view: ConnectionView = {
      id: connection.id, provider: connection.provider, baseUrl: connection.baseUrl, config: connection.config,
      credentials: await deps.secrets.decrypt<Record<string, string>>(connection.secret),
    }
    // Every request carries the connection's secret values, so no redirect takes them to another origin.
    const secretValues = Object.values(view.credentials)
    const upstream = deps.metrics || deps.tracer ? instrumentFetch(deps.fetch, connection.provider, deps.metrics ?? noMetrics, deps.tracer ?? noTracer) : deps.fetch
    const fetcher: typeof fetch = async (input, init) => {
      if (rps) await deps.budget.take(connection.id, rps)
      return upstream(input, withCredentials(init, secretValues))
    }
    let cache = connectorCaches.get(connection.id)
    if (!cache) setNewest(connectorCaches, connection.id, (cache = new Map()), MAX_CONNECTION_BASES)
    const base = { updatedAt: connection.updatedAt, connector, fetch: fetcher, view, cache }
    setNewest(bases, connection.id, base, MAX_CONNECTION_BASES)
    return base
  }

  /**
   * A context over `base`, every field given in one object literal: objects of one literal share
   * their hidden class. A copy made by spreading a context and then completed property by
   * property got a hidden class of its own (a map and its descriptors, ~300 B, in heap snapshots
   * at 5,000 runs: one per run), and a binding lives as long as its run.
   */
  const contextOf = (base: ConnectionBase, run?: { workflow: ConnectorContext['workflow']; callbackUrl: string; otherActiveRuns: () => Promise<string[]> }): ConnectorContext => ({
    fetch: base.fetch,
    connection: base.view,
    workflow: run?.workflow ?? { id: '', upstreamWorkflowId: '', config: {} },
    callbackUrl: run?.callbackUrl ?? '',
    now,
    cache: base.cache,
    otherActiveRuns: run?.otherActiveRuns,
    maxAnswerBytes: deps.maxAnswerBytes,
  })

  const forConnection = async (connection: ConnectionRow) => {
    const base = await baseOf(connection)
    return { connector: base.connector, ctx: contextOf(base) }
  }

  /**
   * The unfinished runs of the same upstream workflow on the connection but `runId`. Made here, out
   * of `bind`, so it closes over the ids alone: a closure in `bind` kept the whole run row it was
   * bound from (and that row's own hidden class, ~1 KB) for as long as the binding is kept, that
   * is for the run's life (issue 26: heap snapshots at 5,000 runs, one such row per run).
   */
  const otherActiveRuns = (connectionId: string, upstreamWorkflowId: string, runId: string) => async () =>
    (await deps.store.runs.activeIdsOfUpstreamWorkflow(connectionId, upstreamWorkflowId)).filter((id) => id !== runId)

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
      const base = await baseOf(connection)
      const { connector } = base
      const policy = pollPolicyOf(workflow, connector)
      const ctx = contextOf(base, {
        workflow: { id: workflow.id, upstreamWorkflowId: workflow.upstreamWorkflowId, config: workflow.config, hasInputTemplate: workflow.inputTemplate !== null && workflow.inputTemplate !== undefined },
        callbackUrl: await callbackUrl(deps.secrets, publicUrl, run.id, expiry),
        otherActiveRuns: otherActiveRuns(connection.id, workflow.upstreamWorkflowId, run.id),
      })
      binding = { connector, policy, ctx, triggerRetry: workflow.triggerRetry === 'at_least_once' ? 'at_least_once' : 'at_most_once' }
      setNewest(kept, run.id, { workflowAt: workflow.updatedAt, connectionId: connection.id, connectionAt: connection.updatedAt, expiry, publicUrl, binding }, MAX_KEPT_BINDINGS)
    }
    const durations = binding.policy.adaptive && run.upstreamId ? await durationsOf(workflow.id) : undefined
    return durations ? { ...binding, durations } : binding
  }
  return { bind, unbind: (runId) => { kept.delete(runId) }, forConnection }
}
