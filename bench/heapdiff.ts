/**
 * `npx tsx bench/heapdiff.ts <before.heapsnapshot> <after.heapsnapshot> [runs] [top]`: what the
 * heap gained between two V8 heap snapshots (node --heapsnapshot-signal, see BENCH_WATCH_HEAP in
 * bench/watch.ts), by node type and constructor name: count and self size added, and per run in
 * flight when `runs` is given. Self sizes only (no retained sizes): enough to say which objects
 * each run adds.
 */
import { readFileSync } from 'node:fs'

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } }
  nodes: number[]
  strings: string[]
}

/** Count and self size per "type name" of every node in a snapshot. */
function summarise(file: string): Map<string, { count: number; size: number }> {
  const s = JSON.parse(readFileSync(file, 'utf8')) as Snapshot
  const fields = s.snapshot.meta.node_fields
  const types = s.snapshot.meta.node_types[0]
  const stride = fields.length
  const iType = fields.indexOf('type'), iName = fields.indexOf('name'), iSize = fields.indexOf('self_size')
  const out = new Map<string, { count: number; size: number }>()
  for (let i = 0; i < s.nodes.length; i += stride) {
    const type = types[s.nodes[i + iType]!]!
    let name = s.strings[s.nodes[i + iName]!] ?? ''
    // Strings and code are grouped by type only (their names are their contents).
    if (type === 'string' || type === 'concatenated string' || type === 'sliced string' || type === 'code' || type === 'number') name = ''
    else if (name.length > 60) name = name.slice(0, 60) + '…'
    const key = `${type} ${name}`
    const e = out.get(key) ?? { count: 0, size: 0 }
    e.count++
    e.size += s.nodes[i + iSize]!
    out.set(key, e)
  }
  return out
}

const [a, b, runsArg, topArg] = process.argv.slice(2)
if (!a || !b) { console.error('usage: tsx bench/heapdiff.ts <before.heapsnapshot> <after.heapsnapshot> [runs] [top]'); process.exit(2) }
const before = summarise(a), after = summarise(b)
const runs = Number(runsArg ?? 0)
const rows = [...after].map(([k, v]) => {
  const w = before.get(k) ?? { count: 0, size: 0 }
  return { k, count: v.count - w.count, size: v.size - w.size }
}).sort((x, y) => y.size - x.size)
const total = (m: Map<string, { size: number }>) => [...m.values()].reduce((x, y) => x + y.size, 0)
const grown = total(after) - total(before)
console.log(`heap (self sizes): ${(total(before) / 1048576).toFixed(1)} MiB -> ${(total(after) / 1048576).toFixed(1)} MiB (+${(grown / 1048576).toFixed(1)} MiB${runs ? `, ${(grown / runs / 1024).toFixed(2)} KiB per run` : ''})`)
for (const r of rows.slice(0, Number(topArg ?? 40))) {
  const per = runs ? `  ${(r.count / runs).toFixed(2)}/run ${(r.size / runs).toFixed(0)} B/run` : ''
  console.log(`${(r.size / 1024).toFixed(0).padStart(9)} KiB ${String(r.count).padStart(9)}  ${r.k}${per}`)
}
