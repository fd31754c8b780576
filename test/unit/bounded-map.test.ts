/** setNewest: the one way a per-run, per-statement or per-URL memory stays bounded, least recently set dropped first. */
import { describe, expect, it } from 'vitest'
import { setNewest } from '../../src/core/bounded-map.ts'

describe('setNewest', () => {
  it('holds at most max entries, drops the least recently set, and a key set again counts as new', () => {
    const m = new Map<string, number>()
    for (let i = 0; i < 5; i++) setNewest(m, `k${i}`, i, 3)
    expect([...m.keys()]).toEqual(['k2', 'k3', 'k4'])
    // Setting k2 again (a cache hit touched) makes k3 the oldest: it goes next.
    setNewest(m, 'k2', 20, 3)
    setNewest(m, 'k5', 5, 3)
    expect([...m]).toEqual([['k4', 4], ['k2', 20], ['k5', 5]])
    // Setting a key already there never drops another one.
    setNewest(m, 'k4', 40, 3)
    expect(m.size).toBe(3)
    expect(m.get('k2')).toBe(20)
  })
})
