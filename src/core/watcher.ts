import type { CommandName, Observation } from '../connectors/types.ts'
import { CANCEL_NOT_FORWARDED, UpstreamError } from '../connectors/types.ts'
import type { RunPatch, RunRow } from '../db/store.ts'
import { retryDelay } from './backoff.ts'
import { nextPollDelay } from './poll-planner.ts'
import { isTerminal, STATUS_RANK, type ErrorInfo, type NewEvent, type RunStatus } from './domain.ts'
import { noMetrics, noTracer, type BindConnector, type Clock, type ConnectorBinding, type Metrics, type RunLedger, type SpanParent, type Tracer } from './ports.ts'
import { redactDeep } from './redact.ts'

export interface WatcherDeps {
  ledger: RunLedger
  clock: Clock
  random: () => number
  bind: BindConnector
  metrics?: Metrics
  tracer?: Tracer
}

/** Runs whose trigger span is kept to parent their polls (tracing only). */
const MAX_TRACED_RUNS = 10_000

/** When the run wants its next tick (ms epoch), or null when it needs none. */
export interface TickResult { nextAt: number | null }

/** A command refused: the HTTP layer answers 409 with this code. */
export class CommandRejected extends Error {
  constructor(readonly code: string, message: string) { super(message) }
}

interface Change { patch: RunPatch; events: NewEvent[] }

/**
 * The per-run state machine. Each `tick` triggers or polls once, records what changed as
 * events (persisted before they are published, through the ledger) and says when to tick
 * next. Ticks are idempotent: a tick that comes early (alarms and timers may fire twice)
 * only answers the time already planned.
 */
export class Watcher {
  /** The trigger span of each run being traced, so its polls join the same trace. */
  private readonly triggerSpans = new Map<string, SpanParent>()

  constructor(private readonly deps: WatcherDeps) {}

  async tick(runId: string): Promise<TickResult> {
    const run = await this.deps.ledger.getRun(runId)
    if (!run || run.finishedAt || isTerminal(run.status as RunStatus)) return { nextAt: null }
    const now = this.deps.clock.now()
    if (run.status === 'scheduled' && run.scheduledAt && run.scheduledAt > now) return { nextAt: run.scheduledAt }
    if (run.nextTickAt && run.nextTickAt > now) return { nextAt: run.nextTickAt }

    const binding = await this.deps.bind(run)
    if (run.deadlineAt && now >= run.deadlineAt) {
      return this.traced('timeout', run, binding, async () => { await this.timeOut(run, binding); return { nextAt: null } })
    }
    if (!run.upstreamId) return this.traced('trigger', run, binding, () => this.trigger(run, binding))
    if (!binding.connector.poll) {
      // Callback-only upstream: nothing to ask; the deadline is the only thing to wait for.
      return this.plan(run, { patch: {}, events: [] }, run.deadlineAt ?? null)
    }
    return this.traced('poll', run, binding, () => this.poll(run, binding, now))
  }

  private async poll(run: RunRow, binding: ConnectorBinding, now: number): Promise<TickResult> {
    try {
      const obs = await binding.connector.poll!(binding.ctx, { runId: run.id, upstreamId: run.upstreamId!, state: run.connectorState })
      const change = this.observe(run, obs)
      const changed = change.events.length > 0
      const unchanged = changed ? 0 : run.polls + 1
      change.patch.polls = unchanged
      change.patch.transientErrors = 0
      const next = isTerminal((change.patch.status ?? run.status) as RunStatus)
        ? null
        : Math.max(now + nextPollDelay(binding.policy, binding.durations, now - (run.startedAt ?? now), unchanged, this.deps.random), obs.notBefore ?? 0)
      return this.plan(run, change, next)
    } catch (err) {
      return this.failure(run, binding, err, 'poll')
    }
  }

  /**
   * A tick's upstream phase, timed, counted and traced. A run's polls (and its timeout) are
   * children of its trigger's span when this process triggered it: one trace per run.
   */
  private traced(phase: 'trigger' | 'poll' | 'timeout', run: RunRow, binding: ConnectorBinding, fn: () => Promise<TickResult>): Promise<TickResult> {
    const { metrics = noMetrics, tracer = noTracer } = this.deps
    const started = performance.now()
    const parent = phase === 'trigger' ? undefined : this.triggerSpans.get(run.id)
    return tracer.span(`runrelay.${phase}`, { 'runrelay.run_id': run.id, 'runrelay.provider': binding.connector.provider }, async () => {
      const current = phase === 'trigger' ? tracer.current() : undefined
      if (current) {
        if (this.triggerSpans.size >= MAX_TRACED_RUNS) this.triggerSpans.delete(this.triggerSpans.keys().next().value!)
        this.triggerSpans.set(run.id, current)
      }
      let outcome = 'error'
      try {
        const result = await fn()
        outcome = 'ok'
        if (result.nextAt === null) this.triggerSpans.delete(run.id)
        return result
      } finally {
        metrics.inc('runrelay_ticks_total', { phase, outcome })
        metrics.observe('runrelay_tick_duration_seconds', { phase }, (performance.now() - started) / 1000)
      }
    }, parent)
  }

  private async trigger(run: RunRow, binding: ConnectorBinding): Promise<TickResult> {
    const now = this.deps.clock.now()
    // A crash before the answer is stored leaves the run without an upstream id, so the next
    // tick triggers again: with the same Idempotency-Key (the run id), which an upstream that
    // honours it answers with the job it already made.
    try {
      const ctx = { ...binding.ctx, fetch: withIdempotencyKey(binding.ctx.fetch, run.id) }
      const result = await binding.connector.trigger(ctx, {
        runId: run.id, input: run.input, variables: run.variables, runtimeVariables: run.runtimeVariables,
      })
      const change = this.observe(run, { ...result, status: result.status ?? 'queued' })
      change.patch.upstreamId = result.upstreamId
      change.patch.triggerAttemptedAt = run.triggerAttemptedAt ?? now
      change.patch.startedAt = run.startedAt ?? now
      change.patch.transientErrors = 0
      change.patch.polls = 0
      const status = (change.patch.status ?? run.status) as RunStatus
      const next = isTerminal(status) ? null : Math.max(now + binding.policy.firstIntervalMs, result.notBefore ?? 0)
      return this.plan(run, change, next)
    } catch (err) {
      return this.failure(run, binding, err, 'trigger')
    }
  }

  /** Turn an observation into a patch and the events it implies (nothing if nothing changed). */
  observe(run: RunRow, obs: Observation): Change {
    const now = this.deps.clock.now()
    const patch: RunPatch = {}
    const events: NewEvent[] = []
    if (obs.raw !== undefined) patch.lastRaw = obs.raw
    if (obs.state) patch.connectorState = { ...run.connectorState, ...obs.state }
    if (obs.upstreamStatus !== undefined && obs.upstreamStatus !== run.upstreamStatus) patch.upstreamStatus = obs.upstreamStatus

    const progress = obs.progress === undefined ? undefined : Math.min(1, Math.max(0, obs.progress))
    const progressChanged = progress !== undefined && progress !== run.progress
    const messageChanged = obs.message !== undefined && obs.message !== run.message
    if (progressChanged) patch.progress = progress
    if (messageChanged) patch.message = obs.message
    if (progressChanged || messageChanged) events.push({ type: 'run.progress', data: { progress: progress ?? run.progress, message: obs.message ?? run.message } })

    if (obs.outputs?.length) {
      const seen = new Set(run.outputKeys)
      const fresh = obs.outputs.filter((o) => !seen.has(o.key))
      for (const o of fresh) events.push({ type: 'run.output', data: { key: o.key, output: o.data } })
      if (fresh.length) patch.outputKeys = [...run.outputKeys, ...fresh.map((o) => o.key)]
    }

    const from = run.status as RunStatus
    const to = obs.status
    // Statuses that go backwards (running → queued) are kept as the upstream status only.
    if (to && to !== from && STATUS_RANK[to] >= STATUS_RANK[from]) {
      patch.status = to
      const data: Record<string, unknown> = { from, to, upstream_status: obs.upstreamStatus ?? null }
      if (to === 'running' && !run.startedAt) patch.startedAt = now
      if (isTerminal(to)) {
        patch.finishedAt = now
        patch.nextTickAt = null
        if (obs.result !== undefined) { patch.result = obs.result; data.result = obs.result }
        if (to !== 'completed') {
          // Last guard: an upstream's error text may quote a URL with its credentials.
          const error = obs.error ? redactDeep(obs.error) : { code: `upstream_${to}`, message: `upstream reported ${obs.upstreamStatus ?? to}` }
          patch.error = error
          data.error = error
        }
      }
      events.push({ type: 'run.status_changed', data })
    }
    return { patch, events }
  }

  private async failure(run: RunRow, binding: ConnectorBinding, err: unknown, phase: 'trigger' | 'poll' | 'timeout'): Promise<TickResult> {
    const now = this.deps.clock.now()
    const upstream = err instanceof UpstreamError ? err : null
    if (!upstream) throw err // not the upstream's fault (store down, a bug): the host retries the tick
    this.deps.metrics?.inc('runrelay_upstream_errors_total', { provider: binding.connector.provider, phase, code: upstream.code, transient: String(upstream.transient) })
    const attempt = run.transientErrors + 1
    // Last guard before the error is stored and published: no credential of the connection, no URL credential.
    const error: ErrorInfo = redactDeep(upstream.toInfo(), Object.values(binding.ctx?.connection?.credentials ?? {}))
    if (upstream.transient && attempt <= binding.policy.maxTransientErrors) {
      const next = Math.max(now + retryDelay(binding.policy, attempt, this.deps.random), upstream.notBefore ?? 0)
      return this.plan(run, {
        patch: { transientErrors: attempt },
        events: [{ type: 'run.error', data: { phase, transient: true, attempt, retry_at: new Date(next).toISOString(), error } }],
      }, next)
    }
    const reason = upstream.transient ? 'too_many_transient_errors' : 'upstream_error'
    await this.finish(run, 'failed', { ...error, message: upstream.transient ? `gave up after ${attempt - 1} transient errors: ${error.message}` : error.message }, { phase, reason }, binding)
    return { nextAt: null }
  }

  private async timeOut(run: RunRow, binding: ConnectorBinding): Promise<void> {
    const cancel = binding.connector.commands?.cancel
    let upstream = 'not_supported'
    if (cancel && run.upstreamId) {
      try { await cancel(binding.ctx, { runId: run.id, upstreamId: run.upstreamId, state: run.connectorState }, undefined); upstream = 'canceled' } catch (err) { upstream = notForwarded(err) ? 'cancel_skipped' : 'cancel_failed' }
    }
    await this.finish(run, 'timed_out', { code: 'deadline_exceeded', message: 'the run passed its deadline' }, { upstream }, binding)
  }

  private async finish(run: RunRow, to: RunStatus, error: ErrorInfo | null, extra: Record<string, unknown>, binding: ConnectorBinding): Promise<RunRow> {
    const now = this.deps.clock.now()
    const data: Record<string, unknown> = { from: run.status, to, upstream_status: run.upstreamStatus, ...extra }
    if (error) data.error = error
    const ended = (await this.deps.ledger.commit(run, { status: to, finishedAt: now, nextTickAt: null, error: error ?? run.error }, [{ type: 'run.status_changed', data }])).run
    await this.ended(ended, binding)
    return ended
  }

  /** The connector's clean-up once a run has ended (best effort: the run's outcome is already stored). */
  private async ended(run: RunRow, binding?: ConnectorBinding): Promise<void> {
    try {
      const b = binding ?? await this.deps.bind(run)
      await b.connector.finished?.(b.ctx, { runId: run.id, upstreamId: run.upstreamId ?? '', state: run.connectorState })
    } catch { /* the upstream keeps what trigger set; nothing in runrelay depends on it */ }
  }

  /** Persist a change with the next tick time; the deadline always gets a tick of its own. */
  private async plan(run: RunRow, change: Change, next: number | null): Promise<TickResult> {
    const terminal = isTerminal((change.patch.status ?? run.status) as RunStatus)
    const at = terminal ? null : next === null ? run.deadlineAt ?? null : run.deadlineAt ? Math.min(next, run.deadlineAt) : next
    change.patch.nextTickAt = at
    const { run: stored } = await this.deps.ledger.commit(run, change.patch, change.events)
    if (terminal && !isTerminal(run.status as RunStatus)) await this.ended(stored)
    return { nextAt: at }
  }

  /** Apply an observation pushed by the upstream (a callback). Idempotent with polls. */
  async push(runId: string, obs: Observation): Promise<RunRow | undefined> {
    const run = await this.deps.ledger.getRun(runId)
    if (!run || isTerminal(run.status as RunStatus)) return run
    const change = this.observe(run, obs)
    if (change.events.length === 0 && Object.keys(change.patch).length === 0) return run
    const stored = (await this.deps.ledger.commit(run, change.patch, change.events)).run
    if (change.patch.status && isTerminal(change.patch.status as RunStatus)) await this.ended(stored)
    return stored
  }

  /**
   * Run a user's command. Cancel always ends the run here (forwarded upstream where the
   * connector can); pause, resume and input need the connector's support.
   */
  async command(runId: string, name: CommandName, payload: unknown, by: string): Promise<RunRow> {
    const run = await this.deps.ledger.getRun(runId)
    if (!run) throw new CommandRejected('not_found', 'run not found')
    const status = run.status as RunStatus
    if (isTerminal(status)) throw new CommandRejected('run_finished', `run is already ${status}`)
    const binding = await this.deps.bind(run)
    const handler = binding.connector.commands?.[name]
    if (name !== 'cancel') {
      if (!handler) throw new CommandRejected('command_not_supported', `the ${binding.connector.provider} connector cannot ${name} a run`)
      if (!run.upstreamId) throw new CommandRejected('run_not_started', 'the run has not started upstream yet')
      if (name === 'pause' && status === 'paused') throw new CommandRejected('run_paused', 'run is already paused')
      if (name === 'resume' && status !== 'paused') throw new CommandRejected('run_not_paused', 'run is not paused')
    }
    let upstream = 'not_supported'
    let upstreamNote: string | undefined
    let obs: Observation | void = undefined
    if (handler && run.upstreamId) {
      try {
        obs = await handler(binding.ctx, { runId: run.id, upstreamId: run.upstreamId, state: run.connectorState }, payload)
        upstream = 'ok'
      } catch (err) {
        if (name !== 'cancel') {
          const info = err instanceof UpstreamError ? err.toInfo() : { code: 'command_failed', message: String((err as Error)?.message ?? err) }
          throw new CommandRejected(info.code, `upstream refused ${name}: ${info.message}`)
        }
        upstream = notForwarded(err) ? 'skipped' : 'failed'
        if (notForwarded(err)) upstreamNote = (err as Error).message
      }
    }
    const commandEvent: NewEvent = { type: 'run.command', data: { command: name, by, upstream, ...(upstreamNote ? { upstream_note: upstreamNote } : {}), ...(payload !== undefined ? { payload } : {}) } }
    if (name === 'cancel') {
      const now = this.deps.clock.now()
      const data = { from: status, to: 'canceled', upstream_status: run.upstreamStatus, reason: 'canceled_by_user' }
      const ended = (await this.deps.ledger.commit(run, { status: 'canceled', finishedAt: now, nextTickAt: null }, [commandEvent, { type: 'run.status_changed', data }])).run
      await this.ended(ended, binding)
      return ended
    }
    const implied: Observation = { ...(obs ?? {}) }
    if (implied.status === undefined && name === 'pause') implied.status = 'paused'
    if (implied.status === undefined && name === 'resume') implied.status = 'running'
    const change = this.observe(run, implied)
    return (await this.deps.ledger.commit(run, change.patch, [commandEvent, ...change.events])).run
  }
}

/** A cancel the connector kept from the upstream on purpose (it would stop more than this run). */
const notForwarded = (err: unknown): boolean => err instanceof UpstreamError && err.code === CANCEL_NOT_FORWARDED

/** Adds the run id as Idempotency-Key to a trigger's POST, so a retried trigger is one run upstream. */
function withIdempotencyKey(f: typeof fetch, key: string): typeof fetch {
  return (input, init) => {
    const headers = new Headers(init?.headers)
    if ((init?.method ?? 'GET').toUpperCase() === 'POST' && !headers.has('idempotency-key')) headers.set('idempotency-key', key)
    return f(input, { ...init, headers })
  }
}
