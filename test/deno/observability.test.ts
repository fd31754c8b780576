/**
 * Observability on real Deno (a child process): GET /metrics answers Prometheus text whose
 * counters move with a run, and the run's trace reaches a local OTLP/HTTP receiver with the
 * same parent links as on Node (context through Deno's AsyncLocalStorage).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { launchDeno, type LaunchedServer } from '../conformance/launch.ts'
import { startOtlpReceiver } from '../fakes/otlp-receiver.ts'
import { demoTenant } from '../helpers/live.ts'
import { metricValue, parsePrometheus } from '../helpers/prometheus.ts'
import { until } from '../helpers/server.ts'

const METRICS_TOKEN = 'metrics-token-0123456789'

describe('observability on Deno', () => {
  let server: LaunchedServer | undefined
  let receiver: Awaited<ReturnType<typeof startOtlpReceiver>>

  beforeAll(async () => {
    receiver = await startOtlpReceiver()
    server = await launchDeno({ RUNRELAY_METRICS_TOKEN: METRICS_TOKEN, OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_BSP_SCHEDULE_DELAY: '50' })
  }, 30_000)
  afterAll(async () => {
    await server?.stop()
    await receiver?.close()
  })

  it('scrapes counters that move with a run, and exports its trace', async () => {
    const scrape = async () => {
      const res = await fetch(`${server!.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })
      expect(res.status).toBe(200)
      return parsePrometheus(await res.text())
    }
    const t = await demoTenant(server!, 'deno-obs')
    const wf = await t.workflow('quick', { durationMs: 300, steps: 2, queueMs: 0 })
    await t.client.patch(`/v1/workflows/${wf}`, { poll_policy: { first_interval_ms: 100, max_interval_ms: 100 } })
    const before = await scrape()
    const run = await t.trigger(wf)
    await until(async () => (await t.client.get(`/v1/runs/${run}`)).body.status === 'completed', 15_000, 'the run to complete')
    const after = await scrape()
    const delta = (name: string, labels: Record<string, string> = {}) => metricValue(after, name, labels) - metricValue(before, name, labels)
    const stored = (await t.history(run)).length
    expect(delta('runrelay_ticks_total', { phase: 'trigger', outcome: 'ok' })).toBe(1)
    expect(delta('runrelay_ticks_total', { phase: 'poll', outcome: 'ok' })).toBeGreaterThanOrEqual(1)
    expect(delta('runrelay_events_persisted_total')).toBe(stored)
    expect(delta('runrelay_events_published_total')).toBe(stored)
    expect(delta('runrelay_runs_finished_total', { status: 'completed' })).toBe(1)
    expect(metricValue(after, 'process_resident_memory_bytes')).toBeGreaterThan(0)

    const ofRun = (name: string) => receiver.spans.filter((s) => s.name === name && s.attributes['runrelay.run_id'] === run)
    await until(() => ofRun('runrelay.poll').length >= 1 && ofRun('runrelay.publish').length >= 3, 10_000, 'the run\'s spans')
    const [trigger] = ofRun('runrelay.trigger')
    expect(trigger).toBeDefined()
    const polls = ofRun('runrelay.poll')
    for (const poll of polls) expect([poll.traceId, poll.parentSpanId]).toEqual([trigger!.traceId, trigger!.spanId])
    const byId = new Map(receiver.spans.map((s) => [s.spanId, s]))
    for (const publish of ofRun('runrelay.publish')) {
      const persist = byId.get(publish.parentSpanId!)
      expect(persist?.name).toBe('runrelay.persist')
      expect(['POST /v1/workflows/:id/runs', 'runrelay.trigger', 'runrelay.poll']).toContain(byId.get(persist!.parentSpanId!)?.name)
    }
  }, 40_000)
})
