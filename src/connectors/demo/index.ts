import * as z from 'zod'
import { finalError } from '../shared.ts'
import { defineConnector } from '../../core/define-connector.ts'
import type { Observation } from '../types.ts'

/**
 * A simulated upstream with no network, so a newcomer sees live runs with nothing set up.
 * A run takes `durationMs`, moves through `steps` (one progress and one output each) and
 * ends with `outcome`. Run variables `durationMs`, `steps` and `outcome` override the
 * workflow's config.
 */
const DemoWorkflowConfig = z.object({
  durationMs: z.number().int().min(0).max(3_600_000).default(8_000),
  steps: z.number().int().min(1).max(100).default(4),
  outcome: z.enum(['completed', 'failed']).default('completed'),
  /** Milliseconds the run stays queued before it starts running. */
  queueMs: z.number().int().min(0).max(600_000).default(500),
})
type DemoWorkflowConfig = z.infer<typeof DemoWorkflowConfig>

/** What a demo run keeps between polls: when it started, when it was paused, and its plan. */
const DemoState = z.object({ startedAt: z.number(), pausedAt: z.number().nullable().optional(), plan: DemoWorkflowConfig })
type DemoState = z.infer<typeof DemoState>

function plan(config: Partial<DemoWorkflowConfig>, variables: Record<string, unknown>): DemoWorkflowConfig {
  const merged = { ...config, ...Object.fromEntries(Object.entries(variables).filter(([k]) => k in DemoWorkflowConfig.shape)) }
  const parsed = DemoWorkflowConfig.safeParse(merged)
  if (!parsed.success) throw finalError('demo_invalid_input', `demo: ${parsed.error.issues[0]?.message}`)
  return parsed.data
}

function observe(now: number, state: DemoState): Observation<DemoState> {
  const { plan: p } = state
  const elapsed = (state.pausedAt ?? now) - state.startedAt
  const raw = { demo: true, elapsedMs: elapsed }
  if (state.pausedAt) return { status: 'paused', upstreamStatus: 'paused', raw }
  if (elapsed < p.queueMs) return { status: 'queued', upstreamStatus: 'queued', raw }
  const running = elapsed - p.queueMs
  const done = Math.min(p.steps, Math.floor((running / Math.max(1, p.durationMs)) * p.steps))
  const outputs = Array.from({ length: done }, (_, i) => ({ key: `step-${i + 1}`, data: { step: i + 1, note: `step ${i + 1} of ${p.steps} done` } }))
  if (running >= p.durationMs) {
    return p.outcome === 'completed'
      ? { status: 'completed', upstreamStatus: 'succeeded', progress: 1, message: `step ${p.steps} of ${p.steps}`, outputs, result: { ok: true, steps: p.steps, durationMs: p.durationMs }, raw }
      : { status: 'failed', upstreamStatus: 'errored', progress: done / p.steps, outputs, error: { code: 'demo_failed', message: 'the demo run was set to fail' }, raw }
  }
  return { status: 'running', upstreamStatus: 'running', progress: done / p.steps, message: `step ${Math.min(done + 1, p.steps)} of ${p.steps}`, outputs, raw }
}

export const demoConnector = defineConnector({
  provider: 'demo',
  connectionConfig: z.object({}).passthrough(),
  credentials: z.record(z.string(), z.string()),
  workflowConfig: DemoWorkflowConfig.partial(),
  runState: DemoState,
  defaultPollPolicy: { firstIntervalMs: 500, maxIntervalMs: 2_000, deadlineMs: 3_600_000 },
  // The simulated job's id is the run's: a resent trigger is the same job.
  honoursIdempotencyKey: true,

  async trigger(ctx, req) {
    const state: DemoState = { startedAt: ctx.now(), pausedAt: null, plan: plan(ctx.workflow.config, req.variables) }
    return { upstreamId: `demo-${req.runId}`, ...observe(ctx.now(), state), state }
  },
  async poll(ctx, run) {
    return observe(ctx.now(), run.state)
  },
  commands: {
    async cancel() { return { status: 'canceled', upstreamStatus: 'canceled' } },
    async pause(ctx, run) {
      const state = { ...run.state, pausedAt: ctx.now() }
      return { ...observe(ctx.now(), state), state }
    },
    async resume(ctx, run) {
      const s = run.state
      const state = { ...s, startedAt: s.startedAt + (ctx.now() - (s.pausedAt ?? ctx.now())), pausedAt: null }
      return { ...observe(ctx.now(), state), state }
    },
  },
  async listWorkflows() {
    return [{ id: 'demo', name: 'Demo workflow', description: 'A simulated run with progress and outputs' }]
  },
  async testConnection() { return { ok: true, message: 'the demo connector needs no network' } },
  parseCallback(_ctx, _run, body) {
    const b = z.object({ status: z.enum(['running', 'completed', 'failed']), progress: z.number().optional() }).safeParse(body)
    return b.success ? { status: b.data.status, upstreamStatus: b.data.status, progress: b.data.progress, raw: body } : { raw: body }
  },
})
