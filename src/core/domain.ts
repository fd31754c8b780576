import * as z from 'zod'

/** Every status a run can have; the order of the lifecycle is documented in the README. */
export const RUN_STATUSES = ['scheduled', 'queued', 'running', 'paused', 'completed', 'failed', 'canceled', 'timed_out'] as const
export const RunStatus = z.enum(RUN_STATUSES).meta({ id: 'RunStatus' })
export type RunStatus = z.infer<typeof RunStatus>

export const TERMINAL_STATUSES: ReadonlySet<RunStatus> = new Set(['completed', 'failed', 'canceled', 'timed_out'])
export const isTerminal = (status: RunStatus): boolean => TERMINAL_STATUSES.has(status)

/**
 * How far along the lifecycle a status is. An upstream that reports an earlier stage than
 * the one already recorded (statuses "going backwards") does not move the run back.
 */
export const STATUS_RANK: Record<RunStatus, number> = {
  scheduled: 0, queued: 1, running: 2, paused: 2, completed: 3, failed: 3, canceled: 3, timed_out: 3,
}

export const EVENT_TYPES = ['run.created', 'run.status_changed', 'run.progress', 'run.output', 'run.error', 'run.command'] as const
export const EventType = z.enum(EVENT_TYPES).meta({ id: 'EventType' })
export type EventType = z.infer<typeof EventType>

export const SCOPES = ['workflows:read', 'workflows:write', 'runs:read', 'runs:write', 'admin'] as const
export const Scope = z.enum(SCOPES).meta({ id: 'Scope' })
export type Scope = z.infer<typeof Scope>

/** An event as sent to subscribers and listed by the API (snake_case like every API body). `id` orders the tenant feed; `seq` orders one run. */
export const RunEvent = z.object({
  id: z.number().int().describe('position in the tenant feed (resume a feed with after=<id>)'),
  run_id: z.string(),
  seq: z.number().int().positive().describe('position in the run: 1, 2, 3 … without gaps (resume a run stream with after=<seq>)'),
  type: EventType,
  at: z.string().describe('when it happened (ISO 8601)'),
  workflow_id: z.string(),
  /** The run's status once this event is applied. */
  status: RunStatus.describe('the run\'s status once this event is applied'),
  tags: z.array(z.string()),
  data: z.record(z.string(), z.unknown()),
}).meta({ id: 'RunEvent' })
export type RunEvent = z.infer<typeof RunEvent>

/** An event the watcher has decided on but that has no id or seq yet. */
export interface NewEvent {
  type: EventType
  data: Record<string, unknown>
}

export const ErrorInfo = z.object({
  code: z.string(),
  message: z.string(),
  status: z.number().int().optional(),
  body: z.unknown().optional(),
})
export type ErrorInfo = z.infer<typeof ErrorInfo>

/** A poll policy: first interval, the cap of the exponential backoff (and of adaptive polling), and the deadline of a run. */
export const PollPolicy = z.object({
  firstIntervalMs: z.number().int().min(100).max(3_600_000).default(2_000),
  maxIntervalMs: z.number().int().min(100).max(3_600_000).default(60_000),
  deadlineMs: z.number().int().min(1_000).max(7 * 24 * 3_600_000).default(3_600_000),
  /** Transient upstream failures tolerated in a row before the run fails. */
  maxTransientErrors: z.number().int().min(0).max(1_000).default(20),
  /** Plan polls from the workflow's own run durations once it has enough finished runs (src/core/poll-planner.ts). */
  adaptive: z.boolean().default(true),
}).refine((p) => p.maxIntervalMs >= p.firstIntervalMs, { message: 'maxIntervalMs must be >= firstIntervalMs', path: ['maxIntervalMs'] })
export type PollPolicy = z.infer<typeof PollPolicy>
export const DEFAULT_POLL_POLICY: PollPolicy = PollPolicy.parse({})
