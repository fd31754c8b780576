import type { z } from 'zod'
import type { ApiKeyRow, ConnectionRow, RunRow, TenantRow, WorkflowRow } from '../db/store.ts'
import type { ApiKey, Connection, Run, Tenant, Workflow } from './schemas.ts'

// Stored rows → API bodies. Secrets never pass through here: connections show credential names only.

/** An epoch-ms time as ISO 8601, null for none. */
export const isoOf = (ms: number | null | undefined): string | null => (ms === null || ms === undefined ? null : new Date(ms).toISOString())

export const tenantBody = (t: TenantRow): z.infer<typeof Tenant> => ({ id: t.id, name: t.name, retention_days: t.retentionDays, created_at: isoOf(t.createdAt)! })

export const apiKeyBody = (k: ApiKeyRow, key?: string): z.infer<typeof ApiKey> => ({
  id: k.id, tenant_id: k.tenantId, name: k.name, prefix: k.prefix, scopes: k.scopes,
  created_at: isoOf(k.createdAt)!, last_used_at: isoOf(k.lastUsedAt), revoked_at: isoOf(k.revokedAt), ...(key ? { key } : {}),
})

export const connectionBody = (c: ConnectionRow, credentialFields: string[], callbackUrl?: string): z.infer<typeof Connection> => ({
  id: c.id, name: c.name, provider: c.provider, base_url: c.baseUrl, config: c.config, credential_fields: credentialFields,
  ...(callbackUrl ? { callback_url: callbackUrl } : {}),
  rate_limit_per_second: c.rateLimitPerSecond, created_at: isoOf(c.createdAt)!, updated_at: isoOf(c.updatedAt)!,
})

export const workflowBody = (w: WorkflowRow): z.infer<typeof Workflow> => ({
  id: w.id, name: w.name, connection_id: w.connectionId, upstream_workflow_id: w.upstreamWorkflowId, input_template: w.inputTemplate ?? null,
  poll_policy: {
    ...(w.pollPolicy.firstIntervalMs !== undefined && { first_interval_ms: w.pollPolicy.firstIntervalMs }),
    ...(w.pollPolicy.maxIntervalMs !== undefined && { max_interval_ms: w.pollPolicy.maxIntervalMs }),
    ...(w.pollPolicy.deadlineMs !== undefined && { deadline_ms: w.pollPolicy.deadlineMs }),
    ...(w.pollPolicy.maxTransientErrors !== undefined && { max_transient_errors: w.pollPolicy.maxTransientErrors }),
    ...(w.pollPolicy.adaptive !== undefined && { adaptive: w.pollPolicy.adaptive }),
  },
  config: w.config, tags: w.tags, trigger_retry: w.triggerRetry === 'at_least_once' ? 'at_least_once' : 'at_most_once', variables_schema: w.variablesSchema ?? null, created_at: isoOf(w.createdAt)!, updated_at: isoOf(w.updatedAt)!,
})

export const runBody = (r: RunRow): z.infer<typeof Run> => ({
  id: r.id, workflow_id: r.workflowId, status: r.status as z.infer<typeof Run>['status'], upstream_status: r.upstreamStatus, upstream_id: r.upstreamId,
  input: r.input ?? null, variables: r.variables, runtime_variables: r.runtimeVariables, tags: r.tags,
  progress: r.progress, message: r.message, result: r.result ?? null, error: r.error ?? null, last_raw: r.lastRaw ?? null, seq: r.lastSeq,
  created_at: isoOf(r.createdAt)!, scheduled_at: isoOf(r.scheduledAt), started_at: isoOf(r.startedAt), finished_at: isoOf(r.finishedAt),
  deadline_at: isoOf(r.deadlineAt), next_poll_at: isoOf(r.nextTickAt), updated_at: isoOf(r.updatedAt)!,
  duration_ms: r.startedAt && r.finishedAt ? r.finishedAt - r.startedAt : null,
  replay_of: r.replayOf ?? null,
})
