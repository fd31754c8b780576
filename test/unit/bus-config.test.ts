import { describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/config.ts'

describe('bus and tail configuration', () => {
  it('takes redis:// and rediss:// bus URLs, and a tail period from 0 (off) to 60 s', () => {
    expect(parseConfig({}).RUNRELAY_BUS_URL).toBeUndefined()
    expect(parseConfig({}).RUNRELAY_TAIL_INTERVAL_MS).toBe(100)
    expect(parseConfig({ RUNRELAY_BUS_URL: 'redis://127.0.0.1:6379' }).RUNRELAY_BUS_URL).toBe('redis://127.0.0.1:6379')
    expect(parseConfig({ RUNRELAY_BUS_URL: 'rediss://:pw@cache.example:6380/0' }).RUNRELAY_BUS_URL).toBe('rediss://:pw@cache.example:6380/0')
    expect(parseConfig({ RUNRELAY_TAIL_INTERVAL_MS: '0' }).RUNRELAY_TAIL_INTERVAL_MS).toBe(0)
  })

  it('refuses other URLs and periods with a message naming the variable', () => {
    expect(() => parseConfig({ RUNRELAY_BUS_URL: 'nats://127.0.0.1:4222' })).toThrow(/RUNRELAY_BUS_URL: must be a redis:\/\/ or rediss:\/\/ URL/)
    expect(() => parseConfig({ RUNRELAY_BUS_URL: 'not a url' })).toThrow(/RUNRELAY_BUS_URL/)
    expect(() => parseConfig({ RUNRELAY_TAIL_INTERVAL_MS: '-1' })).toThrow(/RUNRELAY_TAIL_INTERVAL_MS/)
    expect(() => parseConfig({ RUNRELAY_TAIL_INTERVAL_MS: '600000' })).toThrow(/RUNRELAY_TAIL_INTERVAL_MS/)
  })
})
