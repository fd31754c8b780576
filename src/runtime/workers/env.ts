import * as z from 'zod'
import { parseConfig, type Config } from '../../config.ts'
import type { FeedObject, FeedRelayObject } from './feed-object.ts'
import type { JobsObject } from './jobs-object.ts'
import type { RunObject } from './run-object.ts'
import type { RunShardObject } from './run-shard-object.ts'

/** The Worker's bindings (wrangler.toml): Durable Object namespaces, variables and secrets. */
export interface Env {
  RUNS: DurableObjectNamespace<RunObject>
  FEEDS: DurableObjectNamespace<FeedObject>
  FEED_RELAYS: DurableObjectNamespace<FeedRelayObject>
  /** Socket holders of hot runs, named `<runId>:<k>` (RUNRELAY_RUN_SHARDS). */
  RUN_SHARDS: DurableObjectNamespace<RunShardObject>
  /** One object ('jobs'): schedules, webhook deliveries, retention. */
  JOBS: DurableObjectNamespace<JobsObject>
  /** libsql://… (Turso), https://… (sqld) or http://127.0.0.1:… (the test server). */
  LIBSQL_URL?: string
  LIBSQL_AUTH_TOKEN?: string
  RUNRELAY_ENCRYPTION_KEY?: string
  RUNRELAY_ROOT_KEY?: string
  RUNRELAY_ALLOW_PRIVATE_NETWORK?: string
  RUNRELAY_PUBLIC_URL?: string
  RUNRELAY_HEARTBEAT_MS?: string
  RUNRELAY_MAX_BODY_BYTES?: string
  RUNRELAY_LOG?: string
  RUNRELAY_UPSTREAM_TIMEOUT_MS?: string
  RUNRELAY_MAX_UPSTREAM_BODY_BYTES?: string
  /** How often the jobs object scans for new events while a webhook endpoint is enabled. */
  RUNRELAY_JOBS_INTERVAL_MS?: string
  RUNRELAY_WEBHOOK_RETRY_SCHEDULE?: string
  RUNRELAY_WEBHOOK_TIMEOUT_MS?: string
  /** Relay shards in front of each tenant's feed object; 0 = run objects notify the feed directly. */
  RUNRELAY_FEED_SHARDS?: string
  /** Shard objects per hot run that hold its WebSocket subscribers; 0 = the run object holds them all. */
  RUNRELAY_RUN_SHARDS?: string
  /** Sockets the run object holds itself before new ones go to shards. */
  RUNRELAY_RUN_SHARD_AFTER?: string
}

const WorkersOnly = z.object({
  RUNRELAY_FEED_SHARDS: z.coerce.number().int().min(0).max(256).default(0),
  RUNRELAY_RUN_SHARDS: z.coerce.number().int().min(0).max(1024).default(0),
  RUNRELAY_RUN_SHARD_AFTER: z.coerce.number().int().min(0).max(32_000).default(1000),
})

export interface WorkersConfig extends Config {
  RUNRELAY_FEED_SHARDS: number
  RUNRELAY_RUN_SHARDS: number
  RUNRELAY_RUN_SHARD_AFTER: number
}

/** The shared config schema plus the Workers-only knobs; bindings that are not strings are ignored. */
export function workersConfig(env: Env): WorkersConfig {
  const vars: Record<string, string | undefined> = {}
  for (const [k, v] of Object.entries(env)) if (typeof v === 'string') vars[k] = v
  const extra = WorkersOnly.safeParse(vars)
  if (!extra.success) throw new Error(`invalid configuration: ${extra.error.issues[0]?.path.join('.')}: ${extra.error.issues[0]?.message}`)
  return { ...parseConfig(vars), ...extra.data }
}
