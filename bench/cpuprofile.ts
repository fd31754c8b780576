/**
 * `npx tsx bench/cpuprofile.ts <file.cpuprofile> [top]`: a V8 CPU profile (node --cpu-prof)
 * summed by self time: the top functions, and by area (the package or source folder of each
 * frame's file), as BENCHMARKS.md reports them.
 */
import { readFileSync } from 'node:fs'

interface Node { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }
const [file, topArg] = process.argv.slice(2)
if (!file) { console.error('usage: tsx bench/cpuprofile.ts <file.cpuprofile> [top]'); process.exit(2) }
const prof = JSON.parse(readFileSync(file, 'utf8')) as { nodes: Node[]; samples: number[]; timeDeltas: number[] }
const byId = new Map(prof.nodes.map((n) => [n.id, n]))
const self = new Map<number, number>()
prof.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (prof.timeDeltas[i] ?? 0)))
const total = [...self.values()].reduce((a, b) => a + b, 0)
const area = (url: string): string => {
  if (!url) return '(native / vm)'
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)
  if (m) return m[1]!
  if (url.startsWith('node:')) return 'node core'
  const c = /chunks\/([a-z-]+)-/.exec(url)
  if (c) return `dist chunk ${c[1]}`
  const s = /src\/([^/]+(?:\/[^/]+)?)/.exec(url)
  return s ? `src/${s[1]}` : url.split('/').slice(-1)[0]!
}
const fns = new Map<string, number>(), areas = new Map<string, number>()
for (const [id, us] of self) {
  const n = byId.get(id)!
  const f = `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url.split('/').slice(-2).join('/')}:${n.callFrame.lineNumber + 1}`
  fns.set(f, (fns.get(f) ?? 0) + us)
  const a = area(n.callFrame.url)
  areas.set(a, (areas.get(a) ?? 0) + us)
}
const pct = (us: number) => `${((100 * us) / total).toFixed(1).padStart(5)}%`
console.log(`total sampled ${(total / 1e6).toFixed(1)} s`)
console.log('\nby self time:')
for (const [f, us] of [...fns].sort((a, b) => b[1] - a[1]).slice(0, Number(topArg ?? 30))) console.log(`${pct(us)}  ${f}`)
console.log('\nby area:')
for (const [a, us] of [...areas].sort((a, b) => b[1] - a[1]).slice(0, 20)) console.log(`${pct(us)}  ${a}`)
