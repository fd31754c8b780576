import type { CommandName, Observation } from '../../connectors/types.ts'
import type { Binder } from '../../services/binder.ts'
import type { NewEvent, RunEvent } from '../../core/domain.ts'
import { Mutex } from '../../core/mutex.ts'
import type { BindConnector, ConnectorBinding, RunLedger } from '../../core/ports.ts'
import { systemClock } from '../../core/ports.ts'
import { CommandRejected, Watcher } from '../../core/watcher.ts'
import { REPLAY_PAGE } from '../../core/stream-session.ts'
import { applyChange, type ChangeEvent } from '../../core/run-change.ts'
import { SeqConflictError, type RunPatch, type RunRow, type Store } from '../../db/store.ts'
import { errorJson, upgradeRequired } from '../../http/errors.ts'
import type { Env } from './env.ts'
import { getShared, platformOf, type Shared } from './shared.ts'
import { composeBinder } from '../compose.ts'
import { ALARM_RETRY_MS, heldFrom, MetaTable, SocketHoldingObject } from './socket-holder.ts'
import { fanOutRun, ReplayBatches } from '../../core/held-streams.ts'
import { RunFanout, type RunSocket } from './run-fanout.ts'
import { RunOutbox } from './run-outbox.ts'
import { streamParams, WS_OUT, type StreamParams } from './streams.ts'

/** Outbox flush retries back off from this to FLUSH_RETRY_MAX_MS while libSQL is unavailable. */
const FLUSH_RETRY_MIN_MS = 250
const FLUSH_RETRY_MAX_MS = 5_000
/** A binding (workflow + connection) is re-read at most this often; a stale one is used while libSQL is down. */
const BIND_FRESH_MS = 30_000

export type CommandOutcome = { ok: true; run: RunRow } | { ok: false; code: string; message: string }

/**
 * One object per run (named by the run id). It owns the run's state while the run is not
 * finished: ticks are driven by the object's alarm, commands and callback pushes go through
 * it, and its subscribers are hibernatable WebSockets (SSE streams keep it awake).
 *
 * Durability: a change is written to the object's own SQLite storage first (the run row and
 * its new events in an outbox, one transaction), then flushed to libSQL, which assigns the
 * feed ids; only then are the events published. If libSQL is down the change is already
 * durable here, the alarm retries the flush with backoff, and subscribers see the events
 * late but in order and once.
 */
export class RunObject extends SocketHoldingObject<RunSocket> {
  private readonly lock = new Mutex()
  /** Small durable values (JSON by key) in the object's SQLite storage. */
  private readonly meta = new MetaTable(this.ctx.storage.sql)
  /** The run row and the events not yet in libSQL (run-outbox.ts). */
  private readonly outbox = new RunOutbox(this.ctx.storage, this.meta)
  private watcher?: Watcher
  private binder?: Binder
  private bindCache?: { at: number; binding: ConnectorBinding }
  private flushFailures = 0
  private tickRetryAt: number | null = null
  /** The hibernation handlers every socket-holding object shares (socket-holder.ts). */
  protected override readonly sockets = this.socketHandlers({
    refreshed: async (expiresAt) => {
      // A later expiry: the alarm may wake at the old one, and its sweep finds the new one.
      this.socketExpiry = Math.min(this.socketExpiry ?? Infinity, expiresAt)
      await this.lock.run(() => this.armAlarm())
    },
    closed: () => this.lock.run(async () => { await this.armAlarm(); await this.cleanupIfDone() }),
  })
  /** Sockets waiting for their replay, served in batches (one libSQL read per batch). */
  private readonly replays = new ReplayBatches<WebSocket>({
    ...this.held,
    lock: this.lock,
    read: async (runId, after, limit) => (await this.deps()).shared.store.runs.events(runId, after, limit),
    runId: () => this.meta.get<RunRow>('run')?.id,
    sentTop: () => this.outbox.publishedSeq(),
    finished: () => Boolean(this.meta.get<RunRow>('run')?.finishedAt),
    onReady: (rec) => { if (rec.expiresAt !== undefined) this.socketExpiry = Math.min(this.socketExpiry ?? Infinity, rec.expiresAt) },
    afterBatch: () => this.armAlarm(),
    log: (msg, extra) => this.log(msg, 'fetch', extra),
  })
  /**
   * The earliest token expiry among this instance's sockets (null: none). Kept incrementally
   * (a socket's join lowers it; a refresh or a close leaves it early, which only wakes the
   * alarm early, and the alarm's sweep recomputes it): armAlarm never reads every attachment.
   */
  private socketExpiry: number | null = null
  /** The run's shards and its tenant's feed (run-fanout.ts). */
  private readonly fanout = new RunFanout({
    env: this.env, ctx: this.ctx, meta: this.meta,
    feedShards: () => this.shared?.config.RUNRELAY_FEED_SHARDS ?? 0,
    log: (msg, handler, extra) => this.log(msg, handler, extra),
  })

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env, 'RunObject')
    this.outbox.create()
    // A new instance (first start, or a wake from hibernation): the one full read of the
    // sockets' attachments, for their earliest expiry; a replay an eviction cut short resumes.
    const held = this.heldStreams('run')
    for (const [, att] of held) if (att?.expiresAt !== undefined) this.socketExpiry = Math.min(this.socketExpiry ?? Infinity, att.expiresAt)
    ctx.waitUntil(this.replays.resume(held))
  }

  // ---- entry points (each catches and logs with class and handler) ----------------------

  /** Persist a new run with run.created in libSQL (a 202 means it is there), then watch it. */
  create(row: Parameters<Store['runs']['create']>[0], created: NewEvent, publicUrl: string): Promise<RunRow> {
    return this.entry('create', () => this.lock.run(async () => {
      const existing = this.meta.get<RunRow>('run')
      if (existing) return existing
      this.meta.set('publicUrl', publicUrl)
      const { store } = await this.deps()
      const { run, event } = await store.runs.create(row, created)
      this.meta.set('run', run)
      this.fanout.notifyFeed(run.tenantId, run.id, event.id)
      await this.armAlarm()
      return run
    }))
  }

  /** A user's command, serialised with the ticks. CommandRejected comes back as a value (RPC drops error classes). */
  command(runId: string, name: CommandName, payload: unknown, by: string): Promise<CommandOutcome> {
    return this.entry('command', () => this.lock.run(async () => {
      const { watcher } = await this.deps()
      try {
        const run = await watcher.command(runId, name, payload, by)
        return { ok: true as const, run }
      } catch (err) {
        if (err instanceof CommandRejected) return { ok: false as const, code: err.code, message: err.message }
        throw err
      } finally {
        await this.armAlarm()
      }
    }))
  }

  /** An observation the upstream pushed to the callback URL. */
  push(runId: string, obs: Observation): Promise<void> {
    return this.entry('push', () => this.lock.run(async () => {
      const { watcher } = await this.deps()
      try {
        await watcher.push(runId, obs)
      } finally {
        await this.armAlarm()
      }
    }))
  }

  /** Make sure an unfinished run has its alarm (the cron sweep calls this for runs that look idle). */
  wake(runId: string): Promise<void> {
    return this.entry('wake', () => this.lock.run(async () => {
      await this.loadRun(runId)
      await this.armAlarm()
    }))
  }

  override async alarm(): Promise<void> {
    await this.entry('alarm', () => this.lock.run(async () => {
      try {
        if (this.outbox.hasPending()) await this.flush()
        const run = this.meta.get<RunRow>('run')
        if (run && !run.finishedAt) await this.tick(run.id)
        this.socketExpiry = (await this.sweepStreams()).earliest
      } finally {
        await this.armAlarm()
        await this.cleanupIfDone()
      }
    })).catch(async () => {
      // Our own retry, not the runtime's: keep one alarm at the earliest due time.
      await this.ctx.storage.setAlarm(Date.now() + ALARM_RETRY_MS).catch(() => {})
    })
  }

  async fetch(request: Request): Promise<Response> {
    return this.serveStream(async () => {
      const params = streamParams(request)
      if (!params?.runId) return errorJson(400, 'bad_request', 'not a stream request')
      if (params.transport === 'sse') return await this.openSse(params)
      if (request.headers.get('upgrade')?.toLowerCase() !== 'websocket') return upgradeRequired()
      const { shared } = await this.deps()
      const shard = this.fanout.shardFor(params.runId, shared.config)
      if (shard) return shard.fetch(request)
      // The replay joins the next batch.
      return this.acceptStream(request, params, 'run', { ...heldFrom(params), last: params.after },
        (ws) => this.replays.add({ s: ws, runId: params.runId, pos: params.after, done: false, finished: params.finished }))
    })
  }

  // ---- run state --------------------------------------------------------------------------

  /** The run as this object knows it; loaded from libSQL the first time (or after cleanup). */
  private async loadRun(runId: string): Promise<RunRow | undefined> {
    const mine = this.meta.get<RunRow>('run')
    if (mine) return mine
    const { store } = await this.deps()
    const run = await store.runs.getById(runId)
    if (run && !run.finishedAt) this.meta.set('run', run)
    return run
  }

  /** The ledger's commit: durable here first, then flushed to libSQL, then published. */
  private async commit(run: RunRow, patch: RunPatch, newEvents: NewEvent[]): Promise<{ run: RunRow; events: RunEvent[] }> {
    const current = this.meta.get<RunRow>('run')
    if (current && current.lastSeq !== run.lastSeq) throw new SeqConflictError(run.id)
    const now = Date.now()
    // The same change as every runtime's (core/run-change.ts), kept here before it goes to libSQL.
    const change = applyChange(run, patch, newEvents, now)
    const rows: ChangeEvent[] = change.events
    const next = change.run
    this.outbox.stage(next, rows)
    const published = await this.flush()
    // Events still in the outbox (libSQL down) are not returned: they are published by a later flush.
    return { run: next, events: published.filter((e) => e.seq > run.lastSeq) }
  }

  /** Send the outbox to libSQL; on success publish what it held. Never throws: a failure arms a retry. */
  private async flush(): Promise<RunEvent[]> {
    const run = this.meta.get<RunRow>('run')
    if (!run) return []
    const pending = this.outbox.pending()
    try {
      const { store } = await this.deps()
      const events = await store.runs.writeThrough(run, pending)
      const last = pending.length ? pending[pending.length - 1]!.seq : 0
      this.outbox.sent(last)
      this.flushFailures = 0
      this.publish(run, events)
      return events
    } catch (err) {
      this.flushFailures++
      this.log('outbox flush failed; retrying', 'flush', { runId: run.id, pending: pending.length, attempt: this.flushFailures, error: String((err as Error)?.message ?? err) })
      return []
    }
  }

  private async tick(runId: string): Promise<void> {
    const { watcher } = await this.deps()
    try {
      await watcher.tick(runId)
      this.tickRetryAt = null
    } catch (err) {
      this.tickRetryAt = Date.now() + ALARM_RETRY_MS
      this.log('tick failed', 'alarm', { runId, error: String((err as Error)?.stack ?? err) })
    }
  }

  /** One alarm at the earliest due time: the next tick, a flush retry, a heartbeat or a token expiry. */
  protected override async armAlarm(): Promise<void> {
    const now = Date.now()
    const due: number[] = []
    const run = this.meta.get<RunRow>('run')
    if (run && !run.finishedAt) {
      let at = run.nextTickAt ?? run.scheduledAt ?? now
      if (this.tickRetryAt !== null && at <= now) at = this.tickRetryAt
      due.push(at)
    }
    if (this.outbox.hasPending()) due.push(now + Math.min(FLUSH_RETRY_MAX_MS, FLUSH_RETRY_MIN_MS * 2 ** Math.min(this.flushFailures, 10)))
    const open = this.ctx.getWebSockets().length > 0 || this.sse.size > 0
    due.push(...await this.streamsDue(open, [this.socketExpiry ?? undefined]))
    // Exactly at the earliest: an earlier alarm would tick the run early.
    await this.setAlarmAt(due, false)
  }

  /** A finished, fully flushed run with no subscriber keeps nothing here (libSQL has it all). */
  private async cleanupIfDone(): Promise<void> {
    const run = this.meta.get<RunRow>('run')
    if (!run?.finishedAt || this.outbox.hasPending() || this.ctx.getWebSockets().length || this.sse.size) return
    await this.ctx.storage.deleteAlarm()
    await this.ctx.storage.deleteAll()
    this.outbox.create()
  }

  // ---- subscribers --------------------------------------------------------------------------

  /** Send published events to the ready sockets (run-fanout.ts), the SSE sessions, the shards and the feed. */
  private publish(run: RunRow, events: RunEvent[]): void {
    if (events.length === 0) return
    fanOutRun(WS_OUT, this.heldStreams('run'), events)
    // SSE sessions replay through their gate: it buffers what is published meanwhile and sends each event once.
    for (const s of this.sse) s.push(events)
    this.fanout.notifyShards(run.id, events)
    this.fanout.notifyFeed(run.tenantId, run.id, events[events.length - 1]!.id)
  }

  /**
   * A shard the Worker routed subscribers to directly tells the run about itself (once): it is
   * fed from then on. A finished run (or one this object no longer holds) records nothing; the
   * shard's replay and heartbeat read serve its sockets from libSQL.
   */
  addShard(runId: string, k: number): Promise<void> {
    return this.entry('addShard', () => this.lock.run(async () => {
      const run = this.meta.get<RunRow>('run')
      if (!run || run.id !== runId || run.finishedAt) return
      this.fanout.record(k)
    }))
  }

  /** An SSE subscriber: a core StreamSession (socket-holder.ts), fed by publish. */
  private async openSse(params: StreamParams): Promise<Response> {
    const { store } = await this.deps()
    const runId = params.runId!
    // A finished run (or one that finished before this stream opened): it ends once its replay is sent.
    const finished = params.finished || Boolean(this.meta.get<RunRow>('run')?.finishedAt)
    const { session, response } = await this.sseSession({ runId, after: params.after, expiresAt: params.expiresAt, finished }, params.token,
      (after) => store.runs.events(runId, after, REPLAY_PAGE))
    this.ctx.waitUntil(session.start().then(() => this.lock.run(() => this.armAlarm())).catch((err) => {
      this.log('replay failed', 'fetch', { runId, error: String(err) })
    }))
    return response
  }

  // ---- wiring -------------------------------------------------------------------------------

  private async deps(): Promise<{ shared: Shared; store: Store; watcher: Watcher }> {
    const shared = (this.shared ??= await getShared(this.env))
    if (!this.watcher) {
      const ledger: RunLedger = {
        getRun: (runId) => this.loadRun(runId),
        commit: (run, patch, events) => this.commit(run, patch, events),
      }
      this.watcher = new Watcher({ ledger, clock: systemClock, random: Math.random, bind: this.bind })
    }
    return { shared, store: shared.store, watcher: this.watcher }
  }

  /**
   * The run's connector binding, re-read at most every BIND_FRESH_MS; while libSQL is down a
   * stale one keeps the run polling (its events wait in the outbox).
   */
  private readonly bind: BindConnector = async (run) => {
    const now = Date.now()
    const hit = this.bindCache
    if (hit && now - hit.at < BIND_FRESH_MS) return hit.binding
    try {
      const shared = this.shared ?? (await getShared(this.env))
      this.binder ??= composeBinder(platformOf(shared, () => shared.config.RUNRELAY_PUBLIC_URL ?? this.meta.get<string>('publicUrl') ?? 'http://localhost'))
      const binding = await this.binder.bind(run)
      this.bindCache = { at: now, binding }
      return binding
    } catch (err) {
      if (!hit) throw err
      this.log('bind failed; using the cached binding', 'bind', { runId: run.id, error: String(err) })
      return hit.binding
    }
  }


}

export { shardOf } from './run-fanout.ts'
