import { sql, type BuildColumns } from 'drizzle-orm'
import { index, integer, primaryKey, real, sqliteTable, text, uniqueIndex, type SQLiteColumnBuilderBase, type SQLiteTableExtraConfigValue } from 'drizzle-orm/sqlite-core'
import type { EventType, RunStatus } from '../core/domain.ts'

/** A workflow's poll policy as given (camelCase): runrelay's and the connector's defaults fill the rest when it is used. */
export interface StoredPollPolicy { firstIntervalMs?: number; maxIntervalMs?: number; deadlineMs?: number; maxTransientErrors?: number; adaptive?: boolean }

// Times are integer milliseconds since the epoch: cheap to index, compare and bucket in SQL.

/** A JSON column (text in SQL) typed as T. */
const json = <T>(name: string) => text(name, { mode: 'json' }).$type<T>()
type JsonObject = Record<string, unknown>

/** The tenant a row belongs to. */
const tenant = () => text('tenant_id').notNull()
/** The workflow a row belongs to (a run, its events, a schedule, a delivery, a trigger token). */
const workflow = () => text('workflow_id').notNull()
/** When a row was made. */
const created = () => integer('created_at').notNull()
/** The text primary key and the owning tenant most tables open with. */
const owned = () => ({ id: text('id').primaryKey(), tenantId: tenant() })
/** When a row was made and last changed. */
const stamps = () => ({ createdAt: created(), updatedAt: integer('updated_at').notNull() })

/**
 * A tenant's resource (connections, workflows, schedules, webhook endpoints): `owned()` first,
 * `stamps()` last, and the index newest-first pages walk (db/page.ts), `<table>_tenant` on
 * (tenant_id, created_at, id), before the table's own.
 */
function resourceTable<N extends string, C extends Record<string, SQLiteColumnBuilderBase>>(
  name: N, columns: C, more: (t: BuildColumns<N, ReturnType<typeof owned> & C & ReturnType<typeof stamps>, 'sqlite'>) => SQLiteTableExtraConfigValue[] = () => [],
) {
  return sqliteTable(name, { ...owned(), ...columns, ...stamps() }, (t) => [index(`${name}_tenant`).on(t.tenantId, t.createdAt, t.id), ...more(t)])
}

/** What a run is started with: kept by the run, and by a schedule for each run it makes. */
const runInputs = () => ({
  variables: json<JsonObject>('variables').notNull(),
  runtimeVariables: json<JsonObject>('runtime_variables').notNull(),
  tags: json<string[]>('tags').notNull(),
})

export const tenants = sqliteTable('tenants', {
  id: text('id').primaryKey(),
  name: text('name').notNull(),
  retentionDays: integer('retention_days'),
  createdAt: created(),
})

export const apiKeys = sqliteTable('api_keys', {
  id: text('id').primaryKey(),
  /** null for the root key, which manages tenants and belongs to none. */
  tenantId: text('tenant_id'),
  name: text('name').notNull(),
  prefix: text('prefix').notNull(),
  hash: text('hash').notNull(),
  scopes: json<string[]>('scopes').notNull(),
  createdAt: created(),
  lastUsedAt: integer('last_used_at'),
  revokedAt: integer('revoked_at'),
}, (t) => [uniqueIndex('api_keys_hash').on(t.hash), index('api_keys_tenant').on(t.tenantId, t.createdAt)])

export const connections = resourceTable('connections', {
  name: text('name').notNull(),
  provider: text('provider').notNull(),
  baseUrl: text('base_url').notNull(),
  config: json<JsonObject>('config').notNull(),
  /** AES-GCM sealed JSON of the credentials; never returned by the API. */
  secret: text('secret').notNull(),
  /** Requests per second this connection may send upstream, shared by all its runs. */
  rateLimitPerSecond: real('rate_limit_per_second'),
})

export const workflows = resourceTable('workflows', {
  name: text('name').notNull(),
  connectionId: text('connection_id').notNull(),
  upstreamWorkflowId: text('upstream_workflow_id').notNull(),
  inputTemplate: json<unknown>('input_template'),
  pollPolicy: json<StoredPollPolicy>('poll_policy').notNull(),
  config: json<JsonObject>('config').notNull(),
  tags: json<string[]>('tags').notNull(),
  /** 'at_most_once' (default: a trigger whose outcome is unknown is never resent blindly) or 'at_least_once'. */
  triggerRetry: text('trigger_retry').notNull().default('at_most_once'),
  /** JSON Schema (runrelay's subset) a trigger's `variables` must match; null: any object. */
  variablesSchema: json<JsonObject>('variables_schema'),
}, (t) => [index('workflows_connection').on(t.connectionId)])

export const runs = sqliteTable('runs', {
  ...owned(),
  workflowId: workflow(),
  status: text('status').$type<RunStatus>().notNull(),
  upstreamStatus: text('upstream_status'),
  upstreamId: text('upstream_id'),
  input: json<unknown>('input'),
  ...runInputs(),
  progress: real('progress'),
  message: text('message'),
  result: json<unknown>('result'),
  error: json<JsonObject>('error'),
  lastRaw: json<unknown>('last_raw'),
  connectorState: json<JsonObject>('connector_state').notNull(),
  /** Keys of outputs already emitted as run.output events. */
  outputKeys: json<string[]>('output_keys').notNull(),
  lastSeq: integer('last_seq').notNull(),
  /** Transient upstream failures in a row (reset by a good answer). */
  transientErrors: integer('transient_errors').notNull(),
  polls: integer('polls').notNull(),
  /** When the trigger request was first sent (committed before it leaves). */
  triggerAttemptedAt: integer('trigger_attempted_at'),
  /**
   * Set (to the send time) before a trigger request leaves and cleared with its answer or a
   * failure certain not to have started a job: a run found with it set had a trigger whose
   * outcome is unknown (the process died mid-request).
   */
  triggerPendingAt: integer('trigger_pending_at'),
  /** Trigger requests sent so far. */
  triggerAttempts: integer('trigger_attempts').notNull().default(0),
  /** The process watching the run (its lease), or null when unowned. */
  leaseOwner: text('lease_owner'),
  /** When the lease ends unless renewed (ms epoch). */
  leaseExpiresAt: integer('lease_expires_at'),
  /** Fencing token: bumped on every takeover; a write carrying an older one is refused. */
  leaseToken: integer('lease_token').notNull().default(0),
  nextTickAt: integer('next_tick_at'),
  deadlineAt: integer('deadline_at'),
  scheduledAt: integer('scheduled_at'),
  /** The schedule that made this run, and the occurrence (ms epoch) it stands for. */
  scheduleId: text('schedule_id'),
  scheduleFireAt: integer('schedule_fire_at'),
  /** The run this one replays (same workflow, variables and tags), from the dashboard's "Replay" or POST /v1/runs/{id}/replay. */
  replayOf: text('replay_of'),
  createdAt: created(),
  startedAt: integer('started_at'),
  finishedAt: integer('finished_at'),
  updatedAt: integer('updated_at').notNull(),
}, (t) => [
  index('runs_tenant_created').on(t.tenantId, t.createdAt, t.id),
  index('runs_workflow_created').on(t.workflowId, t.createdAt),
  index('runs_tenant_status').on(t.tenantId, t.status),
  index('runs_unfinished').on(t.finishedAt, t.nextTickAt),
  // Search by upstream id (GET /v1/runs?q=): a support person has the vendor's job id in hand.
  index('runs_tenant_upstream').on(t.tenantId, t.upstreamId),
  // Claiming: unfinished runs whose lease is free or lapsed.
  index('runs_lease').on(t.finishedAt, t.leaseExpiresAt),
  // Covers the workflow summary (counts, durations, timeline) without touching the table.
  index('runs_workflow_summary').on(t.workflowId, t.createdAt, t.status, t.startedAt, t.finishedAt),
  // One live run per schedule occurrence: two schedulers racing cannot both create it.
  // Canceled ones (a paused schedule's pending run) leave the slot free for a later resume.
  uniqueIndex('runs_schedule_fire').on(t.scheduleId, t.scheduleFireAt).where(sql`schedule_id is not null and status != 'canceled'`),
])

export const events = sqliteTable('events', {
  /** Global order: the tenant feed resumes on it. */
  id: integer('id').primaryKey({ autoIncrement: true }),
  tenantId: tenant(),
  runId: text('run_id').notNull(),
  workflowId: workflow(),
  seq: integer('seq').notNull(),
  type: text('type').$type<EventType>().notNull(),
  status: text('status').$type<RunStatus>().notNull(),
  data: json<JsonObject>('data').notNull(),
  createdAt: created(),
}, (t) => [
  uniqueIndex('events_run_seq').on(t.runId, t.seq), index('events_tenant_id').on(t.tenantId, t.id),
  // A workflow's upstream errors over a window (the summary's errors per bucket).
  index('events_workflow_type_created').on(t.workflowId, t.type, t.createdAt),
])

export const idempotencyKeys = sqliteTable('idempotency_keys', {
  tenantId: tenant(),
  key: text('key').notNull(),
  requestHash: text('request_hash').notNull(),
  /** null while the first request is still being answered. */
  responseStatus: integer('response_status'),
  responseBody: text('response_body'),
  /**
   * The id the first request reserved for what it creates (a run): every request with this key
   * creates that one id or finds it, so no delay or fault between the claim and the answer can
   * make a second run (the run's primary key refuses it).
   */
  resourceId: text('resource_id'),
  createdAt: created(),
}, (t) => [primaryKey({ columns: [t.tenantId, t.key] }), index('idempotency_created').on(t.createdAt)])

/** Per-connection request budgets (token buckets) shared by every process on the database. */
export const rateBudgets = sqliteTable('rate_budgets', {
  key: text('key').primaryKey(),
  tokens: real('tokens').notNull(),
  at: integer('at').notNull(),
})

/**
 * Per-API-key request budgets shared by every process on the database: each process pushes its
 * accepted requests here in one batched upsert per sync period and reads back the global bucket
 * (src/db/key-rates.ts). Rows whose key starts with `~live:` mark a live process (`at` = last sync).
 */
export const keyRateBuckets = sqliteTable('key_rate_buckets', {
  key: text('key').primaryKey(),
  tokens: real('tokens').notNull(),
  at: integer('at').notNull(),
}, (t) => [index('key_rate_buckets_at').on(t.at)])

export const settings = sqliteTable('settings', {
  key: text('key').primaryKey(),
  value: text('value').notNull(),
  updatedAt: integer('updated_at').notNull().default(sql`0`),
})

// Schedules, outbound webhooks ------------------------------------------------------------

export const schedules = resourceTable('schedules', {
  workflowId: workflow(),
  name: text('name'),
  /** Five-field cron pattern, or null for a one-off at `at`. */
  cron: text('cron'),
  at: integer('at'),
  /** As given: an IANA name or GMT_plus_1 / GMT_minus_5_30. */
  timezone: text('timezone').notNull(),
  ...runInputs(),
  /** What an occurrence missed while no scheduler ran becomes: 'run_once' or 'skip'. */
  misfire: text('misfire').notNull(),
  paused: integer('paused', { mode: 'boolean' }).notNull(),
  /** The occurrence waiting to fire; null when paused or finished. Claimed by a conditional update. */
  nextFireAt: integer('next_fire_at'),
  /** The pre-created `scheduled` run of nextFireAt (null until it exists). */
  nextRunId: text('next_run_id'),
  lastFireAt: integer('last_fire_at'),
  lastRunId: text('last_run_id'),
  fires: integer('fires').notNull(),
  skipped: integer('skipped').notNull(),
  /** Why the last attempt to create an occurrence's run failed (template variables, workflow gone). */
  lastError: text('last_error'),
}, (t) => [index('schedules_due').on(t.nextFireAt)])

export const webhookEndpoints = resourceTable('webhook_endpoints', {
  /** null: every workflow of the tenant. */
  workflowId: text('workflow_id'),
  url: text('url').notNull(),
  description: text('description'),
  /** 'terminal' | 'status' | 'all' | 'types' (then eventTypes lists them). */
  filter: text('filter').notNull(),
  eventTypes: json<string[]>('event_types').notNull(),
  /** Sealed whsec_ secret; the previous one keeps signing until previousSecretExpiresAt. */
  secret: text('secret').notNull(),
  previousSecret: text('previous_secret'),
  previousSecretExpiresAt: integer('previous_secret_expires_at'),
  enabled: integer('enabled', { mode: 'boolean' }).notNull(),
  disabledReason: text('disabled_reason'),
  disabledAt: integer('disabled_at'),
  /** Start of the current run of failed attempts (null after a success). */
  failingSince: integer('failing_since'),
})

export const webhookDeliveries = sqliteTable('webhook_deliveries', {
  /** `id` is also the webhook-id header: the same for every attempt, so receivers can deduplicate. */
  ...owned(),
  endpointId: text('endpoint_id').notNull(),
  eventId: integer('event_id').notNull(),
  runId: text('run_id').notNull(),
  workflowId: workflow(),
  eventType: text('event_type').notNull(),
  payload: text('payload').notNull(),
  status: text('status').$type<'pending' | 'succeeded' | 'failed'>().notNull(),
  attempts: integer('attempts').notNull(),
  /** Attempts since the last (re)delivery request: the index into the retry schedule. */
  cycleAttempts: integer('cycle_attempts').notNull(),
  nextAttemptAt: integer('next_attempt_at'),
  lastStatusCode: integer('last_status_code'),
  lastError: text('last_error'),
  ...stamps(),
  completedAt: integer('completed_at'),
}, (t) => [
  uniqueIndex('webhook_deliveries_endpoint_event').on(t.endpointId, t.eventId),
  index('webhook_deliveries_due').on(t.status, t.nextAttemptAt),
  index('webhook_deliveries_tenant').on(t.tenantId, t.createdAt, t.id),
])

export const webhookAttempts = sqliteTable('webhook_attempts', {
  id: integer('id').primaryKey({ autoIncrement: true }),
  deliveryId: text('delivery_id').notNull(),
  tenantId: tenant(),
  attempt: integer('attempt').notNull(),
  at: integer('at').notNull(),
  durationMs: integer('duration_ms').notNull(),
  statusCode: integer('status_code'),
  error: text('error'),
  responseBody: text('response_body'),
  retryAfterMs: integer('retry_after_ms'),
}, (t) => [index('webhook_attempts_delivery').on(t.deliveryId, t.id), index('webhook_attempts_tenant_at').on(t.tenantId, t.at)])

/**
 * Trigger tokens (`POST /v1/tokens` with `scope: trigger`): a browser may start at most
 * `maxRuns` runs of one workflow with it. The count lives here, not in the token, so every
 * process (and every Worker isolate) on the database enforces the same limit.
 */
export const triggerTokens = sqliteTable('trigger_tokens', {
  /** `id` is the token's `jti`. */
  ...owned(),
  workflowId: workflow(),
  maxRuns: integer('max_runs').notNull(),
  usedRuns: integer('used_runs').notNull(),
  expiresAt: integer('expires_at').notNull(),
  createdAt: created(),
}, (t) => [index('trigger_tokens_expiry').on(t.expiresAt)])

/**
 * Revoked subscriber and trigger tokens, per tenant: one row per revoked token id (`token_id`
 * is its `jti`), and at most one row `token_id = '*'` whose `before` refuses every token of the
 * tenant minted before it. `expires_at` is when no token the row refuses can still be alive
 * (the longest token lifetime after `before`): retention deletes the row then.
 */
export const tokenRevocations = sqliteTable('token_revocations', {
  tenantId: tenant(),
  tokenId: text('token_id').notNull(),
  before: integer('before').notNull(),
  expiresAt: integer('expires_at').notNull(),
}, (t) => [primaryKey({ columns: [t.tenantId, t.tokenId] }), index('token_revocations_expiry').on(t.expiresAt)])
