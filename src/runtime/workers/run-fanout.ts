import type { RunEvent } from '../../core/domain.ts'
import type { Env, WorkersConfig } from './env.ts'
import type { RunShardObject } from './run-shard-object.ts'
import type { MetaTable } from './socket-holder.ts'
import type { RunStreamRecord } from '../../core/held-streams.ts'
import { runShardName } from './streams.ts'

/** A run socket's attachment: the core's RunStreamRecord (held-streams.ts). */
export type RunSocket = RunStreamRecord

/** What the fan-out needs of its run object. */
export interface FanoutHost {
  env: Env
  ctx: DurableObjectState
  meta: MetaTable
  /** RUNRELAY_FEED_SHARDS, once the shared config is loaded (0 before). */
  feedShards: () => number
  log: (msg: string, handler: string, extra: Record<string, unknown>) => void
}

/**
 * Where a run object's published events go beyond its own sockets: its shards (recorded in
 * 'shards' in meta) and the tenant's feed.
 */
export class RunFanout {
  /** Round-robin over the run's shards (RUNRELAY_RUN_SHARDS). */
  private nextShard = 0

  constructor(private readonly host: FanoutHost) {}

  /**
   * The shard for a new WebSocket subscriber, or null to hold it here: with RUNRELAY_RUN_SHARDS
   * = N > 0, once this object holds RUNRELAY_RUN_SHARD_AFTER sockets, subscribers go round-robin
   * to N shard objects. A shard is recorded before it gets its first socket, so every publish
   * after that reaches it; what was published before is in libSQL, which its replay reads.
   */
  shardFor(runId: string, config: WorkersConfig): DurableObjectStub<RunShardObject> | null {
    const n = config.RUNRELAY_RUN_SHARDS
    if (n <= 0 || this.host.ctx.getWebSockets('run').length < config.RUNRELAY_RUN_SHARD_AFTER) return null
    const k = this.nextShard++ % n
    this.record(k)
    return this.host.env.RUN_SHARDS.get(this.host.env.RUN_SHARDS.idFromName(runShardName(runId, k)))
  }

  /** Shard `k` is fed from now on. */
  record(k: number): void {
    const shards = this.host.meta.get<number[]>('shards') ?? []
    if (!shards.includes(k)) this.host.meta.set('shards', [...shards, k])
  }

  /** Forward published events to the run's shards (each completes a lost batch from libSQL). */
  notifyShards(runId: string, events: RunEvent[]): void {
    const { env, ctx, meta, log } = this.host
    const shards = meta.get<number[]>('shards')
    if (!shards?.length) return
    for (const k of shards) {
      const p = env.RUN_SHARDS.get(env.RUN_SHARDS.idFromName(runShardName(runId, k))).deliver(runId, events)
      ctx.waitUntil(Promise.resolve(p).catch((err: unknown) => log('shard delivery failed', 'publish', { runId, shard: k, error: String(err) })))
    }
  }

  /** Tell the tenant's feed (through a relay shard when configured) that events up to `maxId` exist. */
  notifyFeed(tenantId: string, runId: string, maxId: number): void {
    const { env, ctx, log } = this.host
    const shards = this.host.feedShards()
    const p = shards > 0
      ? env.FEED_RELAYS.get(env.FEED_RELAYS.idFromName(`${tenantId}:${shardOf(runId, shards)}`)).notify(tenantId, maxId)
      : env.FEEDS.get(env.FEEDS.idFromName(tenantId)).notify(tenantId, maxId)
    // The feed pulls from libSQL, so a lost notification only delays: its heartbeat pull catches up.
    ctx.waitUntil(Promise.resolve(p).catch((err: unknown) => log('feed notify failed', 'publish', { tenantId, error: String(err) })))
  }
}

/** A stable shard for a run (FNV-1a of its id). */
export function shardOf(key: string, shards: number): number {
  let h = 0x811c9dc5
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return (h >>> 0) % shards
}
