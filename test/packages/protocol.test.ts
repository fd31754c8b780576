import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from 'vitest'
import type { z } from 'zod'
import * as client from '../../packages/client/src/protocol.ts'
import { EVENT_TYPES, RUN_STATUSES, RunEvent, TERMINAL_STATUSES } from '../../src/core/domain.ts'
import * as server from '../../src/core/protocol.ts'
import { openWs } from '../helpers/clients.ts'
import { demoTenant, within } from '../helpers/live.ts'
import { startTestServer, type TestServer } from '../helpers/server.ts'

// The client's hand-written protocol types must say exactly what the server's zod schemas say.
// The type checks below are enforced by `npm run typecheck` (a value of type `false` cannot be
// `true`); vitest cannot see types, so its half checks that the type check covers this file and
// compares what exists at run time (constants, parsing).
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false
const typeChecks: [
  Same<client.RunEvent, z.infer<typeof RunEvent>>,
  Same<client.ServerMessage, z.infer<typeof server.ServerMessage>>,
  Same<client.ClientMessage, z.infer<typeof server.ClientMessage>>,
  Same<client.RunStatus, (typeof RUN_STATUSES)[number]>,
  Same<client.EventType, (typeof EVENT_TYPES)[number]>,
] = [true, true, true, true, true]
void typeChecks // checked by the compiler, not read
// Same<> can say false: a drifted type (a status the server does not have) must not pass.
// @ts-expect-error 'archived' is not a server status
const driftIsCaught: Same<client.RunStatus | 'archived', (typeof RUN_STATUSES)[number]> = true

const ROOT = join(import.meta.dirname, '..', '..')
let srv: TestServer
beforeAll(async () => { srv = await startTestServer() })
afterAll(async () => { await srv?.stop() })

describe('client protocol = server protocol', () => {
  it('types are equal (compile time) and constants match', () => {
    // The compile-time half runs: `npm run typecheck` (tsc -p tsconfig.json) includes this file.
    const tsconfig = JSON.parse(readFileSync(join(ROOT, 'tsconfig.json'), 'utf8')) as { include: string[]; exclude: string[] }
    expect(tsconfig.include).toContain('test')
    expect(tsconfig.exclude.filter((e) => 'test/packages/protocol.test.ts'.startsWith(e))).toEqual([])
    expect(JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).scripts.typecheck).toMatch(/^tsc --noEmit( |&|$)/)
    expectTypeOf<client.HelloMessage>().toEqualTypeOf<z.infer<typeof server.HelloMessage>>()
    expect(client.CLOSE).toEqual(server.CLOSE)
    expect(client.SUBPROTOCOL).toBe(server.SUBPROTOCOL)
    expect(client.PROTOCOL_VERSION).toBe(server.PROTOCOL_VERSION)
    expect([...client.TERMINAL_STATUSES].sort()).toEqual([...TERMINAL_STATUSES].sort())
  })

  it('every frame of a real run stream parses the same with both', async () => {
    const t = await demoTenant(srv)
    const wf = await t.workflow('frames', { durationMs: 600, steps: 3 })
    const runId = await t.trigger(wf, { tags: ['x'] })
    const raw: string[] = []
    const c = openWs(`${srv.wsUrl}/v1/runs/${runId}/stream?after=0`, { authorization: `Bearer ${t.key}` })
    c.ws.on('message', (d) => raw.push(d.toString()))
    await within(c.closed, 15_000, 'run stream end')
    const types = new Set(raw.map((f) => JSON.parse(f).type))
    expect(types).toContain('hello')
    expect([...types].some((x) => x === 'event' || x === 'batch')).toBe(true)
    for (const frame of raw) {
      const byServer = server.parseServerMessage(frame)
      expect(byServer, frame).not.toBeNull()
      expect(client.parseServerMessage(frame)).toEqual(byServer)
    }
  })

  it('whatever the server schema accepts, the client accepts, and it rejects what the server rejects', () => {
    const event = fc.record({
      id: fc.integer(), run_id: fc.string(), seq: fc.integer({ min: 1 }), type: fc.constantFrom(...EVENT_TYPES), at: fc.string(),
      workflow_id: fc.string(), status: fc.constantFrom(...RUN_STATUSES), tags: fc.array(fc.string()), data: fc.dictionary(fc.string().filter((k) => k !== '__proto__'), fc.jsonValue()),
    })
    const frame = fc.oneof(
      fc.record({ type: fc.constant('event'), event }),
      fc.record({ type: fc.constant('batch'), events: fc.array(event, { maxLength: 3 }) }),
      fc.record({ type: fc.constant('hello'), protocol: fc.constant(1), stream: fc.constantFrom('run', 'feed'), after: fc.integer(), heartbeatMs: fc.integer() }),
      fc.record({ type: fc.constantFrom('heartbeat', 'pong'), at: fc.string() }),
      fc.record({ type: fc.constant('caught_up'), position: fc.integer() }),
      fc.record({ type: fc.constant('error'), code: fc.string(), message: fc.string() }),
      fc.record({ type: fc.constant('token_refreshed'), expiresAt: fc.string() }),
    )
    // Each field dropped or replaced by a wrong type in turn must be refused by both.
    const broken = fc.tuple(frame, fc.nat(), fc.constantFrom(null, 'x', 1.5, [], {})).map(([f, i, v]) => {
      const keys = Object.keys(f).filter((k) => k !== 'type')
      const copy: Record<string, unknown> = { ...f }
      if (keys.length) copy[keys[i % keys.length]!] = v
      return copy
    })
    fc.assert(fc.property(frame, (f) => {
      const s = JSON.stringify(f)
      expect(server.parseServerMessage(s)).not.toBeNull()
      expect(client.parseServerMessage(s)).toEqual(server.parseServerMessage(s))
    }), { numRuns: 300 })
    fc.assert(fc.property(broken, (f) => {
      const s = JSON.stringify(f)
      expect(client.parseServerMessage(s) === null).toBe(server.parseServerMessage(s) === null)
    }), { numRuns: 300 })
  })
})
