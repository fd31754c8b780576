import * as z from 'zod'

/** Every status a run can have; the order of the lifecycle is documented in the README. */
export const RUN_STATUSES = ['scheduled', 'queued', 'running', 'paused', 'completed', 'failed', 'canceled', 'timed_out'] as const
export const RunStatus = z.enum(RUN_STATUSES)
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
export const EventType = z.enum(EVENT_TYPES)
export type EventType = z.infer<typeof EventType>

export const SCOPES = ['workflows:read', 'workflows:write', 'runs:read', 'runs:write', 'admin'] as const
export const Scope = z.enum(SCOPES)
export type Scope = z.infer<typeof Scope>

/** An event as sent to subscribers and listed by the API (snake_case like every API body). `id` orders the tenant feed; `seq` orders one run. */
export const RunEvent = z.object({
  id: z.number().int(),
  run_id: z.string(),
  seq: z.number().int().positive(),
  type: EventType,
  at: z.string(),
  workflow_id: z.string(),
  /** The run's status once this event is applied. */
  status: RunStatus,
  tags: z.array(z.string()),
  data: z.record(z.string(), z.unknown()),
})
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

/** A poll policy: first interval, the cap of the exponential backoff, and the deadline of a run. */
export const PollPolicy = z.object({
  firstIntervalMs: z.number().int().min(100).max(3_600_000).default(2_000),
  maxIntervalMs: z.number().int().min(100).max(3_600_000).default(60_000),
  deadlineMs: z.number().int().min(1_000).max(7 * 24 * 3_600_000).default(3_600_000),
  /** Transient upstream failures tolerated in a row before the run fails. */
  maxTransientErrors: z.number().int().min(0).max(1_000).default(20),
}).refine((p) => p.maxIntervalMs >= p.firstIntervalMs, { message: 'maxIntervalMs must be >= firstIntervalMs', path: ['maxIntervalMs'] })
export type PollPolicy = z.infer<typeof PollPolicy>
export const DEFAULT_POLL_POLICY: PollPolicy = PollPolicy.parse({})
