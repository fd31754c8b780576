/**
 * Set `key` to `value` as the newest entry of `map`, first dropping the oldest one when `map`
 * already holds `max` others: a Map iterates in insertion order, so its first key is the one
 * set (or touched by this function) longest ago. The caches and memories a process keeps per
 * run, statement or URL stay bounded this one way, least recently set first.
 */
export function setNewest<K, V>(map: Map<K, V>, key: K, value: V, max: number): void {
  map.delete(key)
  if (map.size >= max) map.delete(map.keys().next().value as K)
  map.set(key, value)
}
