import { describe, expect, it } from 'vitest'
import type { RunEvent } from '../../src/core/domain.ts'
import { noMetrics } from '../../src/core/ports.ts'
import { CLOSE } from '../../src/core/protocol.ts'
import { runFrames, sweepHeld, type StreamRecord } from '../../src/core/held-streams.ts'
import { StreamSession, type SessionHost, type SessionSocket } from '../../src/core/stream-session.ts'

// The core session over a recording socket (the socket is an edge runrelay owns: every runtime's
// adapter implements it); the runtimes' real sockets are covered by the conformance suite.

const ev = (seq: number, status: RunEvent['status'] = 'running', type: RunEvent['type'] = 'run.progress'): RunEvent =>
  ({ id: 100 + seq, seq, run_id: 'run_1', type, at: new Date(0).toISOString(), workflow_id: 'wf', status, tags: [], data: {} })

function recording(buffered = 0) {
  const sent: string[] = []
  const closes: { code: number; reason: string }[] = []
  const socket: SessionSocket & { buffered: number } = {
    buffered,
    get bufferedAmount() { return this.buffered },
    send: (t) => { sent.push(t) },
    close: (code, reason) => { closes.push({ code, reason }) },
  }
  return { socket, sent, closes, frames: () => sent.map((s) => JSON.parse(s)) }
}

function host(history: RunEvent[], over: Partial<SessionHost> = {}) {
  const members = new Set<StreamSession>()
  let release!: () => void
  const gate = new Promise<void>((r) => (release = r))
  const h: SessionHost = {
    heartbeatMs: 1000, maxBufferedBytes: 1024, metrics: noMetrics,
    join: (s) => { members.add(s); return undefined },
    leave: (s) => { members.delete(s) },
    // The history read waits until the test releases it, so live events arrive mid-replay.
    load: () => async (after) => { await gate; return history.filter((e) => e.seq > after) },
    forget: () => {},
    ...over,
  }
  return { h, members, release }
}

describe('core stream session', () => {
  it('sends hello, the replay, caught_up, then live events once and in order, and closes 1000 at the terminal event', async () => {
    const { h, members, release } = host([ev(1), ev(2), ev(3)])
    const { socket, frames, closes } = recording()
    const s = new StreamSession(h, socket, { runId: 'run_1', after: 1 }, 'ws')
    const started = s.start()
    // Live while the history is read: 3 (also in the history) and 4 (not yet).
    for (const m of members) m.push([ev(3), ev(4)])
    release()
    await started
    for (const m of members) m.push([ev(4), ev(5, 'completed', 'run.status_changed')])
    const f = frames()
    expect(f[0]).toMatchObject({ type: 'hello', stream: 'run', run_id: 'run_1', after: 1, heartbeatMs: 1000 })
    const seqs = f.flatMap((m) => (m.type === 'event' ? [m.event.seq] : m.type === 'batch' ? m.events.map((e: RunEvent) => e.seq) : []))
    expect(seqs).toEqual([2, 3, 4, 5])
    expect(f.findIndex((m) => m.type === 'caught_up')).toBeGreaterThan(0)
    expect(closes).toEqual([{ code: CLOSE.NORMAL, reason: 'run finished' }])
    expect(members.size).toBe(0)
  })

  it('closes a consumer with more than maxBufferedBytes unread with 4008 before writing more', async () => {
    const { h, members, release } = host([])
    const { socket, sent, closes } = recording()
    const s = new StreamSession(h, socket, { runId: 'run_1', after: 0 }, 'ws')
    release()
    await s.start()
    const before = sent.length
    socket.buffered = 2048
    for (const m of members) m.push([ev(1)])
    expect(sent.length).toBe(before)
    expect(closes).toEqual([{ code: CLOSE.SLOW_CONSUMER, reason: 'slow consumer: reconnect with after' }])
  })

  it('closes 4001 when its credential lapses, as the injected check says; a refresh moves the expiry', async () => {
    const { h, release } = host([], {
      refresh: async (_s, token) => (token === 'good' ? Date.now() + 60 : null),
    })
    release()
    const { socket, frames, closes } = recording()
    const s = new StreamSession(h, socket, { runId: 'run_1', after: 0, expiresAt: Date.now() + 40 }, 'ws')
    await s.start()
    s.message('{"type":"refresh_token","token":"bad"}')
    s.message('{"type":"refresh_token","token":"good"}')
    await new Promise((r) => setTimeout(r, 45))
    expect(closes).toEqual([])
    expect(frames().map((m) => m.type)).toEqual(['hello', 'caught_up', 'error', 'token_refreshed'])
    await new Promise((r) => setTimeout(r, 40))
    expect(closes).toEqual([{ code: CLOSE.UNAUTHORIZED, reason: 'token expired' }])

    // A check that says a credential lapsed before its expiry (a revocation) closes at the check.
    const revoked = host([], { lapsed: () => true })
    revoked.release()
    const r = recording()
    await new StreamSession(revoked.h, r.socket, { runId: 'run_1', after: 0, expiresAt: Date.now() }, 'ws').start()
    await new Promise((res) => setTimeout(res, 5))
    expect(r.closes).toEqual([{ code: CLOSE.UNAUTHORIZED, reason: 'token expired' }])
  })

  it('speaks SSE on an SSE socket: retry first, ids as positions, no caught_up', async () => {
    const { h, release } = host([ev(1), ev(2)])
    release()
    const { socket, sent } = recording()
    await new StreamSession(h, socket, { after: 0 }, 'sse').start()
    expect(sent[0]).toBe('retry: 1000\n\n')
    expect(sent.slice(1).join('')).toContain('id: 101\nevent: run.progress\n')
    expect(sent.join('')).not.toContain('caught_up')
  })
})

describe('streams held as records (hibernated sockets)', () => {
  const token = { tenantId: 'ten_1', tokenId: 'tok_1', mintedAt: 1 }
  const held: Array<[string, StreamRecord]> = [
    ['replaying', { ready: false, expiresAt: 5_000, token }],
    ['lapsed', { ready: true, expiresAt: 1_000 }],
    ['keyed', { ready: true }],
    ['token', { ready: true, expiresAt: 9_000, token }],
  ]

  it('closes lapsed credentials at every pass; at a heartbeat beats the ready ones and checks every token stream', () => {
    expect(sweepHeld(held, 1_000, false)).toEqual({ expired: ['lapsed'], beat: [], tokens: [], earliest: 5_000 })
    expect(sweepHeld(held, 1_000, true)).toEqual({
      expired: ['lapsed'], beat: ['keyed', 'token'], tokens: [['replaying', token], ['token', token]], earliest: 5_000,
    })
    // The injected check decides (a revocation-aware one, say); nothing lapsed: nothing closes.
    expect(sweepHeld(held, 1_000, false, () => false).expired).toEqual([])
  })

  it('builds one frame per position, shared by every stream at it, and says whether it ends the run', () => {
    const events = [ev(3), ev(4), ev(5, 'completed', 'run.status_changed')]
    const frames = runFrames(events)
    expect(frames(2)).toBe(frames(2))
    expect(JSON.parse(frames(2).frame).events.map((e: RunEvent) => e.seq)).toEqual([3, 4, 5])
    expect(JSON.parse(frames(4).frame)).toMatchObject({ type: 'event', event: { seq: 5 } })
    expect(frames(2).ends).toBe(true)
    expect(runFrames([ev(3), ev(4)])(2).ends).toBe(false)
  })
})
