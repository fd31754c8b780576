import { UpstreamError, type CommandName, type Observation, type TriggerResult } from './connector.ts'
import type { RunPatch, RunPatch as Patch, RunRecord } from './run.ts'
import { notBefore, retryDelay } from './backoff.ts'
import { setNewest } from './bounded-map.ts'
import { isTerminal, type ErrorInfo, type NewEvent, type RunStatus } from './domain.ts'
import { formsOf, observeChange, type Change } from './observe.ts'
import { nextPollDelay } from './poll-planner.ts'
import { noMetrics, noTracer, WriteConflictError, type BindConnector, type Clock, type ConnectorBinding, type Metrics, type RunLedger, type SpanParent, type Tracer } from './ports.ts'
import { redactText } from './redact.ts'
import { shownError, shownEvents, shownPatch } from './redact-upstream.ts'
import { errorMessage, isRejection, LostAttempts, notForwarded, recording, triggerRequest, withIdempotencyKey, type TriggerCall } from './trigger-calls.ts'

export interface WatcherDeps {
  ledger: RunLedger
  clock: Clock
  random: () => number
  bind: BindConnector
  /** Drop what `bind` keeps for a run between its ticks (see `release`). */
  unbind?: (runId: string) => void
  metrics?: Metrics
  tracer?: Tracer
  /** How long a known trigger answer's write is retried through a database fault (while the run is held). */
  answerRetryMs?: number
}

/** Default of answerRetryMs: longer than any lease TTL, so the lease decides first where there is one. */
const ANSWER_RETRY_MS = 60_000
/** And at most this many writes (about 80 s of backoff), whatever the clock says. */
const MAX_ANSWER_RETRIES = 20

/** Runs whose trigger span is kept to parent their polls (tracing only). */
const MAX_TRACED_RUNS = 10_000
/** When the run wants its next tick (ms epoch), or null when it needs none. */
export interface TickResult { nextAt: number | null }
/** A tick this close to its time is on time: a host timer starting due runs in a burst starts some this early (refused, they spun: 57 ticks a run). */
export const TICK_TOLERANCE_MS = 5

/** A command refused: the HTTP layer answers 409 with this code. */
export class CommandRejected extends Error {
  constructor(readonly code: string, message: string) { super(message) }
}

/**
 * The per-run state machine. Each `tick` triggers or polls once, records what changed as events
 * (persisted before they are published, through the ledger) and says when to tick next. Ticks are
 * idempotent: a tick that comes early (alarms and timers may fire twice) answers the planned time.
 */
export class Watcher {
  /** The trigger span of each run being traced, so its polls join the same trace. */
  private readonly triggerSpans = new Map<string, SpanParent>()
  /** Trigger attempts this process could not store (trigger-calls.ts LostAttempts). */
  private readonly lostAttempts = new LostAttempts()

  constructor(private readonly deps: WatcherDeps) {}

  /**
   * Every write of the watcher: the patch and events pass through the upstream boundary
   * (redact-upstream.ts) first, so whatever an upstream sent is redacted and bounded before it
   * is stored, published, sent in a webhook or served, whichever field it sits in.
   */
  private commit(run: RunRecord, patch: RunPatch, events: NewEvent[], binding: ConnectorBinding | undefined) {
    const forms = formsOf(binding)
    return this.deps.ledger.commit(run, shownPatch(patch, forms) as Patch, shownEvents(events, forms))
  }

  async tick(runId: string): Promise<TickResult> {
    const run = await this.deps.ledger.getRun(runId)
    if (!run || run.finishedAt || isTerminal(run.status)) return { nextAt: null }
    let now = this.deps.clock.now()
    const onTime = now + TICK_TOLERANCE_MS
    if (run.status === 'scheduled' && run.scheduledAt) {
      if (run.scheduledAt > onTime) return { nextAt: run.scheduledAt }
      now = await notBefore(this.deps.clock, run.scheduledAt, now)
    }
    if (run.nextTickAt && run.nextTickAt > onTime) return { nextAt: run.nextTickAt }

    const binding = await this.deps.bind(run)
    if (run.deadlineAt && now >= run.deadlineAt) {
      return this.traced('timeout', run, binding, async () => { await this.timeOut(run, binding); return { nextAt: null } })
    }
    if (!run.upstreamId) return this.traced('trigger', run, binding, () => this.trigger(run, binding).then((r) => { this.lostAttempts.forget(run.id); return r })) // outcome written: lost attempts settled
    if (!binding.connector.poll) {
      // Callback-only upstream: nothing to ask; the deadline is the only thing to wait for.
      return this.plan(run, { patch: {}, events: [] }, run.deadlineAt ?? null, binding)
    }
    return this.traced('poll', run, binding, () => this.poll(run, binding, now))
  }

  private async poll(run: RunRecord, binding: ConnectorBinding, now: number): Promise<TickResult> {
    try {
      const obs = await binding.connector.poll!(binding.ctx, { runId: run.id, upstreamId: run.upstreamId!, state: run.connectorState })
      const change = this.observe(run, obs, binding)
      const changed = change.events.length > 0
      const unchanged = changed ? 0 : run.polls + 1
      change.patch.polls = unchanged
      change.patch.transientErrors = 0
      const next = isTerminal(change.patch.status ?? run.status)
        ? null
        : Math.max(now + nextPollDelay(binding.policy, binding.durations, now - (run.startedAt ?? now), unchanged, this.deps.random), obs.notBefore ?? 0)
      return this.plan(run, change, next, binding)
    } catch (err) {
      return this.failure(run, binding, err, 'poll')
    }
  }

  /**
   * A tick's upstream phase, timed, counted and traced. A run's polls (and its timeout) are
   * children of its trigger's span when this process triggered it: one trace per run.
   */
  private traced(phase: 'trigger' | 'poll' | 'timeout', run: RunRecord, binding: ConnectorBinding, fn: () => Promise<TickResult>): Promise<TickResult> {
    const { metrics = noMetrics, tracer = noTracer } = this.deps
    const started = performance.now()
    const parent = phase === 'trigger' ? undefined : this.triggerSpans.get(run.id)
    return tracer.span(`runrelay.${phase}`, { 'runrelay.run_id': run.id, 'runrelay.provider': binding.connector.provider }, async () => {
      const current = phase === 'trigger' ? tracer.current() : undefined
      if (current) setNewest(this.triggerSpans, run.id, current, MAX_TRACED_RUNS)
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

  private async trigger(run: RunRecord, binding: ConnectorBinding): Promise<TickResult> {
    // A trigger left pending by an earlier attempt (its answer never stored) may have started a
    // job: never sent again blindly, unless this process knows it sent nothing (or has its answer).
    const known = run.triggerPendingAt == null ? null : this.lostAttempts.of(run.id, run.triggerPendingAt)
    if (known) return this.storeAnswer(run, binding, known)
    if (known === undefined) {
      return this.outcomeUnknown(run, binding, {
        attempt: run.triggerAttempts, sent_at: new Date(run.triggerPendingAt!).toISOString(), idempotency_key: run.id,
        what_happened: 'the answer to this attempt was never stored: the process that sent it stopped, lost the run\'s lease, or could not reach the database until it gave up',
      })
    }
    const sentAt = this.deps.clock.now()
    // Committed before the request leaves: from here on a crash leaves an attempt whose outcome is unknown.
    const { run: sending } = await this.commit(run, {
      triggerPendingAt: sentAt, triggerAttempts: run.triggerAttempts + 1, triggerAttemptedAt: run.triggerAttemptedAt ?? sentAt,
    }, [], binding).catch((err: unknown) => { this.lostAttempts.remember(run.id, sentAt, null); throw err })
    const calls: TriggerCall[] = []
    let result: TriggerResult
    try {
      const ctx = { ...binding.ctx, fetch: recording(withIdempotencyKey(binding.ctx.fetch, run.id), calls) }
      result = await binding.connector.trigger(ctx, triggerRequest(sending))
    } catch (err) {
      const last = calls.at(-1)
      // Certain not to have started a job: no request left, it was refused before it was sent,
      // or the upstream rejected it. Retried (or failed) as any upstream error.
      if (!last || last.refused || (last.status !== undefined && isRejection(last.status))) {
        return this.failure(sending, binding, err, 'trigger', { triggerPendingAt: null })
      }
      return this.outcomeUnknown(sending, binding, {
        attempt: sending.triggerAttempts, sent_at: new Date(sentAt).toISOString(), idempotency_key: run.id,
        request: { method: last.method, url: last.url }, what_happened: last.status !== undefined ? `answered HTTP ${last.status}` : `no answer: ${errorMessage(err)}`,
      }, err)
    }
    return this.storeAnswer(sending, binding, result).catch((err: unknown) => { this.lostAttempts.remember(run.id, sentAt, result); throw err })
  }

  /**
   * The answer names a job that exists: storing it must not lose it to a concurrent write
   * (a command on another process). Re-read and store it again; a lost lease still refuses it.
   * A database fault is waited out: the answer is kept and written again with backoff while this
   * writer holds the run (every write is fenced), so a short fault costs no known answer.
   */
  private async storeAnswer(run: RunRecord, binding: ConnectorBinding, result: TriggerResult): Promise<TickResult> {
    let current = run
    const since = this.deps.clock.now()
    for (let attempt = 1, faults = 0; ; attempt++) {
      try {
        return await this.triggered(current, binding, result)
      } catch (err) {
        if (!(err instanceof WriteConflictError)) {
          const { ledger, answerRetryMs = ANSWER_RETRY_MS } = this.deps
          if (ledger.holds?.(run.id) === false || this.deps.clock.now() - since >= answerRetryMs || faults >= MAX_ANSWER_RETRIES) throw err
          await new Promise((r) => setTimeout(r, Math.min(5_000, 100 * 2 ** faults++)))
          attempt--
          // The failed write may have committed after all: then the answer is stored, and the conflict below says so.
          continue
        }
        if (attempt >= 3) throw err
        const again = await this.deps.ledger.getRun(run.id)
        // Our own earlier write of this answer did commit (its reply was lost to the fault): done.
        if (again && again.upstreamId === result.upstreamId && again.triggerPendingAt == null) return { nextAt: again.finishedAt ? null : again.nextTickAt ?? this.deps.clock.now() }
        if (!again || again.finishedAt) {
          // Canceled elsewhere while the trigger was on the wire: cancel the job it made (best effort).
          const cancel = binding.connector.commands?.cancel
          if (again?.status === 'canceled' && cancel) await cancel(binding.ctx, { runId: run.id, upstreamId: result.upstreamId, state: result.state ?? {} }, undefined).catch(() => {})
          return { nextAt: null }
        }
        current = again
      }
    }
  }

  /** Record a trigger's answer: the upstream id, the first observation, the first poll time. */
  private triggered(run: RunRecord, binding: ConnectorBinding, result: TriggerResult, extra: Record<string, unknown> = {}): Promise<TickResult> {
    const now = this.deps.clock.now()
    const change = this.observe(run, { ...result, status: result.status ?? 'queued' }, binding)
    change.patch.upstreamId = result.upstreamId
    change.patch.triggerPendingAt = null
    change.patch.startedAt = run.startedAt ?? now
    change.patch.transientErrors = 0
    change.patch.polls = 0
    for (const e of change.events) if (e.type === 'run.status_changed') Object.assign(e.data, extra)
    const status = change.patch.status ?? run.status
    const next = isTerminal(status) ? null : Math.max(now + binding.policy.firstIntervalMs, result.notBefore ?? 0)
    return this.plan(run, change, next, binding)
  }

  /**
   * A trigger that may or may not have started a job. Resent only where a duplicate cannot
   * happen or does not matter (the upstream honours the Idempotency-Key, or the workflow
   * opted in to at-least-once); else looked up where the vendor can say; else the run fails
   * with trigger_outcome_unknown, keeping what was sent, when and what happened.
   */
  private async outcomeUnknown(run: RunRecord, binding: ConnectorBinding, evidence: Record<string, unknown>, cause?: unknown): Promise<TickResult> {
    const { connector } = binding
    const honours = typeof connector.honoursIdempotencyKey === 'function' ? connector.honoursIdempotencyKey(binding.ctx) : !!connector.honoursIdempotencyKey
    const resend = binding.triggerRetry === 'at_least_once' ? 'at_least_once' : honours ? 'idempotency_key' : null
    if (resend) {
      const err = cause instanceof UpstreamError ? cause : new UpstreamError({ code: 'trigger_outcome_unknown', message: `trigger outcome unknown (${String(evidence.what_happened)}); resent (${resend})`, transient: true })
      // A resend is a transient retry: the same backoff and the same cap as any other.
      const retryable = err.transient ? err : new UpstreamError({ code: err.code, message: err.message, transient: true, status: err.status, body: err.body })
      return this.failure(run, binding, retryable, 'trigger', { triggerPendingAt: null })
    }
    if (connector.reconcileTrigger) {
      try {
        const found = await connector.reconcileTrigger(binding.ctx, { ...triggerRequest(run), sentAt: run.triggerPendingAt ?? this.deps.clock.now() })
        if (found) return this.triggered(run, binding, found, { reconciled: true })
        evidence.reconcile = 'the upstream lists no job of this run'
      } catch (err) {
        evidence.reconcile = `the lookup failed: ${errorMessage(err)}`
      }
    } else {
      evidence.reconcile = `the ${connector.provider} API cannot find the job of a lost answer`
    }
    await this.finish(run, 'failed', {
      code: 'trigger_outcome_unknown',
      message: 'the trigger request may have started a job upstream, but its answer was lost; runrelay does not resend it because this upstream does not deduplicate triggers',
      body: evidence,
    }, { phase: 'trigger', reason: 'trigger_outcome_unknown' }, binding)
    return { nextAt: null }
  }

  /**
   * Turn an observation into a patch and the events it implies (nothing if nothing changed).
   * `binding` names the connection whose secret values must not be stored or shown, should
   * the upstream echo them back (its own state is kept as it came).
   */
  observe(run: RunRecord, seen: Observation, binding?: ConnectorBinding): Change {
    return observeChange(run, seen, formsOf(binding), this.deps.clock.now())
  }

  private async failure(run: RunRecord, binding: ConnectorBinding, err: unknown, phase: 'trigger' | 'poll' | 'timeout', patch: RunPatch = {}): Promise<TickResult> {
    const now = this.deps.clock.now()
    const upstream = err instanceof UpstreamError ? err : null
    if (!upstream) {
      // Not the upstream's fault (store down, a bug): the host retries the tick.
      if (Object.keys(patch).length) await this.commit(run, patch, [], binding)
      // It reaches the run host's log: without the connection's secrets (a connector's bug may quote them).
      const forms = formsOf(binding)
      if (err instanceof Error && forms.length) { try { err.message = redactText(err.message, forms) } catch { /* read-only message: the log line is still redacted for URL credentials */ } }
      throw err
    }
    this.deps.metrics?.inc('runrelay_upstream_errors_total', { provider: binding.connector.provider, phase, code: upstream.code, transient: String(upstream.transient) })
    const attempt = run.transientErrors + 1
    // As it will be stored: the message below quotes it.
    const error: ErrorInfo = shownError(upstream.toInfo(), formsOf(binding))
    if (upstream.transient && attempt <= binding.policy.maxTransientErrors) {
      const next = Math.max(now + retryDelay(binding.policy, attempt, this.deps.random), upstream.notBefore ?? 0)
      return this.plan(run, {
        patch: { ...patch, transientErrors: attempt },
        events: [{ type: 'run.error', data: { phase, transient: true, attempt, retry_at: new Date(next).toISOString(), error } }],
      }, next, binding)
    }
    const reason = upstream.transient ? 'too_many_transient_errors' : 'upstream_error'
    await this.finish(run, 'failed', { ...error, message: upstream.transient ? `gave up after ${attempt - 1} transient errors: ${error.message}` : error.message }, { phase, reason }, binding, patch)
    return { nextAt: null }
  }

  private async timeOut(run: RunRecord, binding: ConnectorBinding): Promise<void> {
    const cancel = binding.connector.commands?.cancel
    let upstream = 'not_supported'
    if (cancel && run.upstreamId) {
      try { await cancel(binding.ctx, { runId: run.id, upstreamId: run.upstreamId, state: run.connectorState }, undefined); upstream = 'canceled' } catch (err) { upstream = notForwarded(err) ? 'cancel_skipped' : 'cancel_failed' }
    }
    await this.finish(run, 'timed_out', { code: 'deadline_exceeded', message: 'the run passed its deadline' }, { upstream }, binding)
  }

  private async finish(run: RunRecord, to: RunStatus, error: ErrorInfo | null, extra: Record<string, unknown>, binding?: ConnectorBinding, patch: RunPatch = {}): Promise<RunRecord> {
    const now = this.deps.clock.now()
    const data: Record<string, unknown> = { from: run.status, to, upstream_status: run.upstreamStatus, ...extra }
    if (error) data.error = error
    const ended = (await this.commit(run, { ...patch, status: to, finishedAt: now, nextTickAt: null, error: error ?? run.error }, [{ type: 'run.status_changed', data }], binding)).run
    await this.ended(ended, binding)
    return ended
  }

  /** The connector's clean-up once a run has ended (best effort: the run's outcome is already stored). */
  private async ended(run: RunRecord, binding?: ConnectorBinding): Promise<void> {
    try {
      const b = binding ?? await this.deps.bind(run)
      await b.connector.finished?.(b.ctx, { runId: run.id, upstreamId: run.upstreamId ?? '', state: run.connectorState })
    } catch { /* the upstream keeps what trigger set; nothing in runrelay depends on it */ }
  }

  /** Persist a change with the next tick time; the deadline always gets a tick of its own. */
  private async plan(run: RunRecord, change: Change, next: number | null, binding: ConnectorBinding): Promise<TickResult> {
    const terminal = isTerminal(change.patch.status ?? run.status)
    const at = terminal ? null : next === null ? run.deadlineAt ?? null : run.deadlineAt ? Math.min(next, run.deadlineAt) : next
    change.patch.nextTickAt = at
    const { run: stored } = await this.commit(run, change.patch, change.events, binding)
    if (terminal && !isTerminal(run.status)) await this.ended(stored, binding)
    return { nextAt: at }
  }

  /** The host stopped watching a run here (it finished, or another process took it over): drop what is kept for its ticks. */
  release(runId: string): void {
    this.triggerSpans.delete(runId)
    this.deps.unbind?.(runId)
  }

  /** Apply an observation pushed by the upstream (a callback). Idempotent with polls. */
  async push(runId: string, obs: Observation): Promise<RunRecord | undefined> {
    const run = await this.deps.ledger.getRun(runId)
    if (!run || isTerminal(run.status)) return run
    // The connection's secrets, to keep them out of what the callback brought (none if it is gone).
    const binding = await this.deps.bind(run).catch(() => undefined)
    const change = this.observe(run, obs, binding)
    if (change.events.length === 0 && Object.keys(change.patch).length === 0) return run
    const stored = (await this.commit(run, change.patch, change.events, binding)).run
    if (change.patch.status && isTerminal(change.patch.status)) await this.ended(stored)
    return stored
  }

  /**
   * Run a user's command. Cancel always ends the run here (forwarded upstream where the
   * connector can); pause, resume and input need the connector's support.
   */
  async command(runId: string, name: CommandName, payload: unknown, by: string): Promise<RunRecord> {
    let run = await this.deps.ledger.getRun(runId)
    if (!run) throw new CommandRejected('not_found', 'run not found')
    const status = run.status
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
          // The HTTP answer quotes it: through the same boundary as what is stored.
          const info = shownError(err instanceof UpstreamError ? err.toInfo() : { code: 'command_failed', message: String((err as Error)?.message ?? err) }, formsOf(binding))
          throw new CommandRejected(info.code, `upstream refused ${name}: ${info.message}`)
        }
        upstream = notForwarded(err) ? 'skipped' : 'failed'
        if (notForwarded(err)) upstreamNote = (err as Error).message
      }
    }
    const commandEvent: NewEvent = { type: 'run.command', data: { command: name, by, upstream, ...(upstreamNote ? { upstream_note: upstreamNote } : {}), ...(payload !== undefined ? { payload } : {}) } }
    // The run's owner (maybe another process) may write between our read and our write: the
    // write is conditional, so on a conflict re-read and apply the command to the new row.
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.applyCommand(run, name, obs, commandEvent, binding)
      } catch (err) {
        if (!(err instanceof WriteConflictError) || attempt >= 5) throw err
        const again = await this.deps.ledger.getRun(runId)
        if (!again) throw new CommandRejected('not_found', 'run not found')
        // The owner may have seen the upstream job canceled (by our own request) before we wrote it.
        if (name === 'cancel' && again.status === 'canceled') return again
        if (isTerminal(again.status)) throw new CommandRejected('run_finished', `run is already ${again.status}`)
        run = again
      }
    }
  }

  private async applyCommand(run: RunRecord, name: CommandName, obs: Observation | void, commandEvent: NewEvent, binding: ConnectorBinding): Promise<RunRecord> {
    const status = run.status
    if (name === 'cancel') {
      const now = this.deps.clock.now()
      const data = { from: status, to: 'canceled', upstream_status: run.upstreamStatus, reason: 'canceled_by_user' }
      const ended = (await this.commit(run, { status: 'canceled', finishedAt: now, nextTickAt: null }, [commandEvent, { type: 'run.status_changed', data }], binding)).run
      await this.ended(ended, binding)
      return ended
    }
    const implied: Observation = { ...(obs ?? {}) }
    if (implied.status === undefined && name === 'pause') implied.status = 'paused'
    if (implied.status === undefined && name === 'resume') implied.status = 'running'
    const change = this.observe(run, implied, binding)
    return (await this.commit(run, change.patch, [commandEvent, ...change.events], binding)).run
  }
}
