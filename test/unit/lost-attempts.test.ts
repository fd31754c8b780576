import { describe, expect, it } from 'vitest'
import { LostAttempts } from '../../src/core/trigger-calls.ts'

// What a process remembers of trigger attempts it could not store: bounded per run and in all.
describe('LostAttempts', () => {
  it('keeps every mark of a run (sent nothing, or its answer) until the run is settled', () => {
    const lost = new LostAttempts()
    lost.remember('run_a', 1, null)
    lost.remember('run_a', 2, { upstreamId: 'job-2' })
    expect(lost.of('run_a', 1)).toBeNull()
    expect(lost.of('run_a', 2)).toEqual({ upstreamId: 'job-2' })
    expect(lost.of('run_a', 3)).toBeUndefined()
    lost.forget('run_a')
    expect(lost.of('run_a', 1)).toBeUndefined()
  })

  it('keeps the newest marks of a run past its bound, and forgets everything past the run bound', () => {
    const lost = new LostAttempts(2, 4)
    for (let at = 1; at <= 6; at++) lost.remember('run_a', at, null)
    expect([1, 2, 3, 4, 5, 6].map((at) => lost.of('run_a', at))).toEqual([undefined, undefined, null, null, null, null])
    lost.remember('run_b', 1, null)
    lost.remember('run_c', 1, null) // a third run: the two kept are forgotten, so their outcomes read unknown
    expect(lost.of('run_a', 6)).toBeUndefined()
    expect(lost.of('run_c', 1)).toBeNull()
  })
})
