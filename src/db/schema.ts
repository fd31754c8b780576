import { sql } from 'drizzle-orm'
import { index, integer, primaryKey, real, sqliteTable, text, uniqueIndex } from 'drizzle-orm/sqlite-core'

// Times are integer milliseconds since the epoch: cheap to index, compare and bucket in SQL.

export const tenants = sqliteTable('tenants', {
  id: text('id').primaryKey(),
  name: text('name').notNull(),
  retentionDays: integer('retention_days'),
  createdAt: integer('created_at').notNull(),
})

export const apiKeys = sqliteTable('api_keys', {
  id: text('id').primaryKey(),
  /** null for the root key, which manages tenants and belongs to none. */
  tenantId: text('tenant_id'),
  name: text('name').notNull(),
  prefix: text('prefix').notNull(),
  hash: text('hash').notNull(),
  scopes: text('scopes', { mode: 'json' }).$type<string[]>().notNull(),
  createdAt: integer('created_at').notNull(),
  lastUsedAt: integer('last_used_at'),
  revokedAt: integer('revoked_at'),
}, (t) => [uniqueIndex('api_keys_hash').on(t.hash), index('api_keys_tenant').on(t.tenantId, t.createdAt)])

export const connections = sqliteTable('connections', {
  id: text('id').primaryKey(),
  tenantId: text('tenant_id').notNull(),
  name: text('name').notNull(),
  provider: text('provider').notNull(),
  baseUrl: text('base_url').notNull(),
  config: text('config', { mode: 'json' }).$type<Record<string, unknown>>().notNull(),
  /** AES-GCM sealed JSON of the credentials; never returned by the API. */
  secret: text('secret').notNull(),
  /** Requests per second this connection may send upstream, shared by all its runs. */
  rateLimitPerSecond: real('rate_limit_per_second'),
  createdAt: integer('created_at').notNull(),
  updatedAt: integer('updated_at').notNull(),
}, (t) => [index('connections_tenant').on(t.tenantId, t.createdAt, t.id)])

export const workflows = sqliteTable('workflows', {
  id: text('id').primaryKey(),
  tenantId: text('tenant_id').notNull(),
  name: text('name').notNull(),
  connectionId: text('connection_id').notNull(),
  upstreamWorkflowId: text('upstream_workflow_id').notNull(),
  inputTemplate: text('input_template', { mode: 'json' }).$type<unknown>(),
  pollPolicy: text('poll_policy', { mode: 'json' }).$type<Record<string, number>>().notNull(),
  config: text('config', { mode: 'json' }).$type<Record<string, unknown>>().notNull(),
  tags: text('tags', { mode: 'json' }).$type<string[]>().notNull(),
  createdAt: integer('created_at').notNull(),
  updatedAt: integer('updated_at').notNull(),
}, (t) => [index('workflows_tenant').on(t.tenantId, t.createdAt, t.id), index('workflows_connection').on(t.connectionId)])

export const runs = sqliteTable('runs', {
  id: text('id').primaryKey(),
  tenantId: text('tenant_id').notNull(),
  workflowId: text('workflow_id').notNull(),
  status: text('status').notNull(),
  upstreamStatus: text('upstream_status'),
  upstreamId: text('upstream_id'),
  input: text('input', { mode: 'json' }).$type<unknown>(),
  variables: text('variables', { mode: 'json' }).$type<Record<string, unknown>>().notNull(),
  runtimeVariables: text('runtime_variables', { mode: 'json' }).$type<Record<string, unknown>>().notNull(),
  tags: text('tags', { mode: 'json' }).$type<string[]>().notNull(),
  progress: real('progress'),
  message: text('message'),
  result: text('result', { mode: 'json' }).$type<unknown>(),
  error: text('error', { mode: 'json' }).$type<Record<string, unknown>>(),
  lastRaw: text('last_raw', { mode: 'json' }).$type<unknown>(),
  connectorState: text('connector_state', { mode: 'json' }).$type<Record<string, unknown>>().notNull(),
  /** Keys of outputs already emitted as run.output events. */
  outputKeys: text('output_keys', { mode: 'json' }).$type<string[]>().notNull(),
  lastSeq: integer('last_seq').notNull(),
  /** Transient upstream failures in a row (reset by a good answer). */
  transientErrors: integer('transient_errors').notNull(),
  polls: integer('polls').notNull(),
  /** Set before the trigger request leaves, so a restart never triggers blindly twice. */
  triggerAttemptedAt: integer('trigger_attempted_at'),
  nextTickAt: integer('next_tick_at'),
  deadlineAt: integer('deadline_at'),
  scheduledAt: integer('scheduled_at'),
  createdAt: integer('created_at').notNull(),
  startedAt: integer('started_at'),
  finishedAt: integer('finished_at'),
  updatedAt: integer('updated_at').notNull(),
}, (t) => [
  index('runs_tenant_created').on(t.tenantId, t.createdAt, t.id),
  index('runs_workflow_created').on(t.workflowId, t.createdAt),
  index('runs_tenant_status').on(t.tenantId, t.status),
  index('runs_unfinished').on(t.finishedAt, t.nextTickAt),
])

export const events = sqliteTable('events', {
  /** Global order: the tenant feed resumes on it. */
  id: integer('id').primaryKey({ autoIncrement: true }),
  tenantId: text('tenant_id').notNull(),
  runId: text('run_id').notNull(),
  workflowId: text('workflow_id').notNull(),
  seq: integer('seq').notNull(),
  type: text('type').notNull(),
  status: text('status').notNull(),
  data: text('data', { mode: 'json' }).$type<Record<string, unknown>>().notNull(),
  createdAt: integer('created_at').notNull(),
}, (t) => [uniqueIndex('events_run_seq').on(t.runId, t.seq), index('events_tenant_id').on(t.tenantId, t.id)])

export const idempotencyKeys = sqliteTable('idempotency_keys', {
  tenantId: text('tenant_id').notNull(),
  key: text('key').notNull(),
  requestHash: text('request_hash').notNull(),
  /** null while the first request is still being answered. */
  responseStatus: integer('response_status'),
  responseBody: text('response_body'),
  createdAt: integer('created_at').notNull(),
}, (t) => [primaryKey({ columns: [t.tenantId, t.key] }), index('idempotency_created').on(t.createdAt)])

export const settings = sqliteTable('settings', {
  key: text('key').primaryKey(),
  value: text('value').notNull(),
  updatedAt: integer('updated_at').notNull().default(sql`0`),
})
