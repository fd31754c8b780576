import * as z from 'zod'
import { RunEvent, RunStatus, Scope, SCOPES } from '../core/domain.ts'

// Request and response bodies (snake_case). These schemas validate requests and produce /openapi.json.

export const Id = z.string().min(1).max(64).regex(/^[\w-]+$/, 'not an id')
export const IdParam = z.object({ id: Id })
export const Tag = z.string().min(1).max(64).regex(/^[\w:.\-/]+$/, 'tags are letters, digits and _ : . - /')
const name = z.string().trim().min(1).max(200)
const json = z.unknown()
const iso = z.string()

export const Pagination = z.object({
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().max(500).optional(),
})

export const TenantCreate = z.object({
  name,
  retention_days: z.number().int().min(1).max(3650).optional(),
  /** Create a first key with every scope and return it once. */
  create_key: z.boolean().default(true),
}).strict().meta({ id: 'TenantCreate' })
export const Tenant = z.object({ id: z.string(), name: z.string(), retention_days: z.number().nullable(), created_at: iso }).meta({ id: 'Tenant' })

export const KeyCreate = z.object({ name, scopes: z.array(Scope).min(1).default([...SCOPES]) }).strict().meta({ id: 'KeyCreate' })
export const ApiKey = z.object({
  id: z.string(), tenant_id: z.string().nullable(), name: z.string(), prefix: z.string(), scopes: z.array(z.string()),
  created_at: iso, last_used_at: iso.nullable(), revoked_at: iso.nullable(),
  key: z.string().optional().describe('the key itself, shown only in the answer that created it'),
}).meta({ id: 'ApiKey' })
export const TenantCreated = z.object({ tenant: Tenant, key: ApiKey.optional() }).meta({ id: 'TenantCreated' })

export const HttpUrl = z.string().url().max(2048).refine((u) => /^https?:\/\//i.test(u), 'must be an http(s) URL')
// Create bodies fill in defaults; PATCH bodies are the same fields without defaults, so an
// absent field keeps the stored value.
const ConnectionFields = {
  name,
  base_url: HttpUrl,
  config: z.record(z.string(), json),
  /** Secrets; write-only, encrypted at rest, never returned. */
  credentials: z.record(z.string(), z.string().max(8192)),
  rate_limit_per_second: z.number().positive().max(10_000).nullable(),
}
export const ConnectionCreate = z.object({
  ...ConnectionFields,
  provider: z.string().min(1).max(50),
  base_url: ConnectionFields.base_url.optional(),
  config: ConnectionFields.config.default({}),
  credentials: ConnectionFields.credentials.default({}),
  rate_limit_per_second: ConnectionFields.rate_limit_per_second.optional(),
}).strict().meta({ id: 'ConnectionCreate' })
export const ConnectionUpdate = z.object(ConnectionFields).partial().strict().meta({ id: 'ConnectionUpdate' })
export const Connection = z.object({
  id: z.string(), name: z.string(), provider: z.string(), base_url: z.string(), config: z.record(z.string(), json),
  credential_fields: z.array(z.string()).describe('names of the stored credentials; their values are never returned'),
  callback_url: z.string().optional().describe('signed URL for the upstream\'s account-wide webhook (providers that push one webhook per account, like Wokelo)'),
  rate_limit_per_second: z.number().nullable(), created_at: iso, updated_at: iso,
}).meta({ id: 'Connection' })

export const PollPolicyInput = z.object({
  first_interval_ms: z.number().int().min(100).max(3_600_000).optional(),
  max_interval_ms: z.number().int().min(100).max(3_600_000).optional(),
  deadline_ms: z.number().int().min(1_000).max(7 * 24 * 3_600_000).optional(),
  max_transient_errors: z.number().int().min(0).max(1_000).optional(),
  adaptive: z.boolean().optional().describe('plan polls from this workflow\'s own run durations once it has 10 finished runs (default true); false keeps the exponential backoff'),
}).strict().meta({ id: 'PollPolicy' })
export const TriggerRetry = z.enum(['at_most_once', 'at_least_once']).describe(
  'what to do when a trigger may have reached the upstream but its answer was lost (a crash, a timeout, a reset): '
  + '`at_most_once` (default) never resends unless the upstream honours Idempotency-Key, and ends the run `failed` with `trigger_outcome_unknown` '
  + 'when the vendor cannot say whether the job exists; `at_least_once` resends, for workflows where a duplicate job is harmless')
/** A JSON Schema node of runrelay's subset (see VariablesSchema). */
export interface VariablesSchemaNode {
  $schema?: string; type?: string | string[]; title?: string; description?: string; default?: unknown; examples?: unknown[]
  enum?: unknown[]; const?: unknown
  minLength?: number; maxLength?: number; format?: string
  minimum?: number; maximum?: number; exclusiveMinimum?: number; exclusiveMaximum?: number; multipleOf?: number
  items?: VariablesSchemaNode; minItems?: number; maxItems?: number; uniqueItems?: boolean
  properties?: Record<string, VariablesSchemaNode>; required?: string[]; additionalProperties?: boolean | VariablesSchemaNode
  minProperties?: number; maxProperties?: number
}
const SchemaType = z.enum(['object', 'array', 'string', 'number', 'integer', 'boolean', 'null'])
/**
 * String formats a variables_schema may name. Not `regex` (nor `pattern`): a tenant's regular
 * expression run against page input is a way to stall the server (catastrophic backtracking).
 */
export const VARIABLE_FORMATS = ['date', 'time', 'date-time', 'duration', 'email', 'hostname', 'ipv4', 'ipv6', 'uri', 'uri-reference', 'url', 'uuid'] as const
const count = z.number().int().min(0).max(1_000_000)
export const VariablesSchemaNode: z.ZodType<VariablesSchemaNode> = z.lazy(() => z.object({
  $schema: z.literal('https://json-schema.org/draft/2020-12/schema').optional(),
  type: z.union([SchemaType, z.array(SchemaType).min(1).max(7)]).optional(),
  title: z.string().max(200).optional(),
  description: z.string().max(2000).optional(),
  default: json.optional(),
  examples: z.array(json).max(20).optional(),
  enum: z.array(json).min(1).max(500).optional(),
  const: json.optional(),
  minLength: count.optional(), maxLength: count.optional(),
  format: z.enum(VARIABLE_FORMATS).optional(),
  minimum: z.number().optional(), maximum: z.number().optional(), exclusiveMinimum: z.number().optional(), exclusiveMaximum: z.number().optional(),
  multipleOf: z.number().positive().optional(),
  items: VariablesSchemaNode.optional(), minItems: count.optional(), maxItems: count.optional(), uniqueItems: z.boolean().optional(),
  properties: z.record(z.string().min(1).max(128), VariablesSchemaNode).optional(),
  required: z.array(z.string().min(1).max(128)).max(200).optional(),
  additionalProperties: z.union([z.boolean(), VariablesSchemaNode]).optional(),
  minProperties: count.optional(), maxProperties: count.optional(),
}).strict()).meta({ id: 'VariablesSchemaNode' })
/**
 * A workflow's `variables_schema`: JSON Schema (draft 2020-12) restricted to what forms and
 * docs use: types, required, enum/const, string lengths and formats, number bounds, arrays,
 * nested objects. Unknown keywords are refused (400), so a schema never silently checks less
 * than its author thinks. The top level describes the `variables` object.
 */
export const VariablesSchema = VariablesSchemaNode
  .refine((s) => s.type === undefined || s.type === 'object', { message: 'variables are an object: the top level has type "object"', path: ['type'] })
  .describe('JSON Schema (2020-12 subset: type, properties, required, additionalProperties, items, enum, const, minLength, maxLength, format, minimum, maximum, minItems, maxItems, uniqueItems) that `variables` of every trigger must match (400 `invalid_variables` naming the path); null: any object')
  .meta({ id: 'VariablesSchema' })

const WorkflowFields = {
  name,
  connection_id: Id,
  upstream_workflow_id: z.string().min(1).max(500),
  input_template: json,
  poll_policy: PollPolicyInput,
  config: z.record(z.string(), json),
  tags: z.array(Tag).max(20),
  trigger_retry: TriggerRetry,
  variables_schema: VariablesSchema.nullable(),
}
export const WorkflowCreate = z.object({
  ...WorkflowFields,
  input_template: json.optional(),
  poll_policy: PollPolicyInput.default({}),
  config: WorkflowFields.config.default({}),
  tags: WorkflowFields.tags.default([]),
  trigger_retry: TriggerRetry.default('at_most_once'),
  variables_schema: WorkflowFields.variables_schema.optional(),
}).strict().meta({ id: 'WorkflowCreate' })
export const WorkflowUpdate = z.object(WorkflowFields).partial().strict().meta({ id: 'WorkflowUpdate' })
export const Workflow = z.object({
  id: z.string(), name: z.string(), connection_id: z.string(), upstream_workflow_id: z.string(), input_template: json,
  poll_policy: PollPolicyInput, config: z.record(z.string(), json), tags: z.array(z.string()), trigger_retry: TriggerRetry,
  variables_schema: z.record(z.string(), json).nullable().describe('the JSON Schema trigger variables must match (see VariablesSchema); null: any object'),
  created_at: iso, updated_at: iso,
}).meta({ id: 'Workflow' })

export const RunCreate = z.object({
  /** `{{name}}` values. */
  variables: z.record(z.string(), json).default({}),
  /** `[[name]]` values. */
  runtime_variables: z.record(z.string(), json).default({}),
  tags: z.array(Tag).max(20).default([]),
  /** Start later (ISO 8601); the run is `scheduled` until then. */
  scheduled_at: z.string().datetime({ offset: true }).optional(),
}).strict().meta({ id: 'RunCreate' })
export const RunCreateWithWorkflow = RunCreate.extend({ workflow_id: Id }).strict().meta({ id: 'RunTrigger' })

export const Run = z.object({
  id: z.string(), workflow_id: z.string(), status: RunStatus, upstream_status: z.string().nullable(), upstream_id: z.string().nullable(),
  input: json, variables: z.record(z.string(), json), runtime_variables: z.record(z.string(), json), tags: z.array(z.string()),
  progress: z.number().nullable(), message: z.string().nullable(), result: json, error: json, last_raw: json,
  seq: z.number().int().describe('seq of the run\'s latest event'),
  created_at: iso, scheduled_at: iso.nullable(), started_at: iso.nullable().describe('when the upstream accepted the job (the trigger succeeded), even if it reports queued then'),
  finished_at: iso.nullable(), deadline_at: iso.nullable(),
  next_poll_at: iso.nullable(), updated_at: iso, duration_ms: z.number().nullable().describe('finished_at − started_at: the time upstream, queue included'),
  replay_of: z.string().nullable().describe('the run this one replays (POST /v1/runs/{id}/replay)'),
}).meta({ id: 'Run' })

/** A list given comma-separated or as repeated query parameters. */
export const csv = <T extends z.ZodType<string, string>>(item: T) => z.union([z.string(), z.array(z.string())])
  .describe(`a comma-separated list, or the parameter repeated${'options' in item ? `; each one of ${(item.options as string[]).join(', ')}` : ''}`)
  .transform((v) => (Array.isArray(v) ? v : v.split(',')).map((s) => s.trim()).filter(Boolean)).pipe(z.array(item))

export const RunListQuery = Pagination.extend({
  workflow_id: csv(Id).optional().describe('one or more workflow ids, comma-separated'),
  status: csv(RunStatus).optional().describe('one or more statuses, comma-separated'),
  tag: Tag.optional(),
  q: z.string().trim().min(1).max(500).optional().describe('search: a run id, an upstream id or a tag, matched exactly'),
  created_after: z.iso.datetime({ offset: true }).optional().describe('runs created at or after this time (ISO 8601)'),
  created_before: z.iso.datetime({ offset: true }).optional().describe('runs created before this time (ISO 8601)'),
})

export const EventsQuery = z.object({
  after: z.coerce.number().int().min(0).default(0),
  limit: z.coerce.number().int().min(1).max(1000).default(500),
})

export const StreamQuery = z.object({
  after: z.coerce.number().int().min(0).optional(),
  token: z.string().max(4096).optional(),
})

export const FeedQuery = StreamQuery.extend({
  workflow_id: csv(Id).optional(),
  status: csv(RunStatus).optional(),
  tag: csv(Tag).optional(),
})

/** The trigger routes' request headers. */
export const TriggerHeaders = z.object({
  'Idempotency-Key': z.string().min(1).max(255).optional().describe('Stripe\'s rules: the same key and body answer the first answer again (no second run); another body is a 422; kept 24 hours.'),
})

export const CommandBody = z.object({ reason: z.string().max(500).optional() }).strict().meta({ id: 'CommandBody' })
export const InputBody = z.object({ data: json }).strict().meta({ id: 'InputBody' })

export const EventList = z.object({ events: z.array(RunEvent), next_after: z.number().int().nullable() }).meta({ id: 'EventList' })
/** The answer of a DELETE. */
export const Deleted = z.object({ deleted: z.literal(true), id: z.string() }).meta({ id: 'Deleted' })
const lists = new WeakMap<z.ZodType, z.ZodType>()
/** A page of `item`s; named `<Item>List` in the OpenAPI document when the item is named. */
export const list = <T extends z.ZodType>(item: T) => {
  const made = lists.get(item) ?? (() => {
    const page = z.object({ items: z.array(item), next_cursor: z.string().nullable() })
    const id = z.globalRegistry.get(item)?.id
    return id ? page.meta({ id: `${id}List` }) : page
  })()
  lists.set(item, made)
  return made as z.ZodObject<{ items: z.ZodArray<T>; next_cursor: z.ZodNullable<z.ZodString> }>
}
export const PolicyFromInput = (p: z.infer<typeof PollPolicyInput>) => ({
  ...(p.first_interval_ms !== undefined && { firstIntervalMs: p.first_interval_ms }),
  ...(p.max_interval_ms !== undefined && { maxIntervalMs: p.max_interval_ms }),
  ...(p.deadline_ms !== undefined && { deadlineMs: p.deadline_ms }),
  ...(p.max_transient_errors !== undefined && { maxTransientErrors: p.max_transient_errors }),
  ...(p.adaptive !== undefined && { adaptive: p.adaptive }),
})
