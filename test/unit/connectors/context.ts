import { expect } from 'vitest'
import type { Connector, ConnectorContext, RunRef } from '../../../src/connectors/types.ts'

/** A ConnectorContext for contract tests: global fetch, a fresh cache, the real clock. */
export function makeCtx(opts: {
  provider: string
  baseUrl: string
  credentials?: Record<string, string>
  connectionConfig?: Record<string, unknown>
  upstreamWorkflowId?: string
  workflowConfig?: Record<string, unknown>
  callbackUrl?: string
  cache?: Map<string, unknown>
  fetch?: typeof fetch
  connectionId?: string
}): ConnectorContext {
  return {
    fetch: opts.fetch ?? ((input, init) => fetch(input, init)),
    connection: {
      id: opts.connectionId ?? 'conn_test',
      provider: opts.provider,
      baseUrl: opts.baseUrl,
      config: opts.connectionConfig ?? {},
      credentials: opts.credentials ?? {},
    },
    workflow: { id: 'wf_test', upstreamWorkflowId: opts.upstreamWorkflowId ?? '', config: opts.workflowConfig ?? {} },
    callbackUrl: opts.callbackUrl ?? 'https://runrelay.test/v1/callbacks/run_test?sig=abc',
    now: Date.now,
    cache: opts.cache ?? new Map(),
  }
}

export const trig = (input: unknown = {}, more: { runId?: string; variables?: Record<string, unknown>; runtimeVariables?: Record<string, unknown> } = {}) => ({
  runId: more.runId ?? `run_${Math.random().toString(36).slice(2, 10)}`,
  input,
  variables: more.variables ?? {},
  runtimeVariables: more.runtimeVariables ?? {},
})

export const ref = (upstreamId: string, state: Record<string, unknown> = {}, runId = 'run_test'): RunRef => ({ runId, upstreamId, state })

/** Await a promise expected to reject with an UpstreamError and return it. */
export async function rejection(p: Promise<unknown>): Promise<{ code: string; transient: boolean; status?: number; message: string; body?: unknown; notBefore?: number }> {
  try {
    await p
  } catch (err) {
    return err as never
  }
  throw new Error('expected a rejection')
}

/**
 * A trigger sent twice with one run id (its Idempotency-Key) starts one upstream job: the same
 * upstream id both times, and one more trigger at the fake (`triggers` reads its count).
 */
export async function expectOneJobPerRunId(connector: Connector, ctx: () => ConnectorContext, req: ReturnType<typeof trig>, triggers: () => number): Promise<void> {
  const before = triggers()
  const a = await connector.trigger(ctx(), req)
  const b = await connector.trigger(ctx(), req)
  expect(b.upstreamId).toBe(a.upstreamId)
  expect(triggers()).toBe(before + 1)
}
