import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { jsonTooDeep, JsonTooDeepError, MAX_JSON_DEPTH, parseJson } from '../../src/core/json.ts'
import { clientFrameTooBig, MAX_CLIENT_FRAME_BYTES, parseClientMessage } from '../../src/core/protocol.ts'

/** Nesting depth of a parsed JSON value (arrays and objects count one level each). */
const depthOf = (v: unknown): number =>
  v !== null && typeof v === 'object' ? 1 + Math.max(0, ...Object.values(v as object).map(depthOf)) : 0

describe('JSON depth limit', () => {
  it('measures nesting as JSON.parse sees it, ignoring brackets in strings and escapes', () => {
    fc.assert(fc.property(fc.jsonValue({ maxDepth: 12 }), fc.integer({ min: 0, max: 12 }), (value, limit) => {
      expect(jsonTooDeep(JSON.stringify(value), limit)).toBe(depthOf(value) > limit)
    }), { numRuns: 500 })
    expect(jsonTooDeep('{"a":"[[[[[\\"[[["}', 1)).toBe(false)
    expect(jsonTooDeep('{"a":"\\\\","b":[[]]}', 2)).toBe(true)
  })

  it('parses up to the limit and refuses beyond it without recursing (100,000 deep)', () => {
    const deep = (n: number) => '['.repeat(n) + ']'.repeat(n)
    expect(parseJson(deep(MAX_JSON_DEPTH))).toBeTruthy()
    expect(() => parseJson(deep(MAX_JSON_DEPTH + 1))).toThrow(JsonTooDeepError)
    expect(() => parseJson(deep(100_000))).toThrow(JsonTooDeepError)
    expect(() => parseJson('{not json')).toThrow(SyntaxError)
  })

  it('WebSocket client messages: too deep is json_too_deep, oversized frames are caught by bytes', () => {
    expect(parseClientMessage('{"type":"ping"}')).toEqual({ ok: true, message: { type: 'ping' } })
    expect(parseClientMessage(`{"type":"ping","x":${'['.repeat(70)}${']'.repeat(70)}}`)).toMatchObject({ ok: false, error: { code: 'json_too_deep' } })
    expect(parseClientMessage('{"type":"nope"}')).toMatchObject({ ok: false, error: { code: 'bad_message' } })
    expect(clientFrameTooBig('x'.repeat(MAX_CLIENT_FRAME_BYTES))).toBe(false)
    expect(clientFrameTooBig('x'.repeat(MAX_CLIENT_FRAME_BYTES + 1))).toBe(true)
    // 3 UTF-8 bytes per character: 22,000 characters are 66,000 bytes.
    expect(clientFrameTooBig('€'.repeat(22_000))).toBe(true)
    expect(clientFrameTooBig(new Uint8Array(MAX_CLIENT_FRAME_BYTES + 1))).toBe(true)
  })
})
