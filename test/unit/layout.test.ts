import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'

// The floors of README's Layout section, read from the source itself: core imports nothing
// above it, and no module reaches itself again through imports that survive compilation.
const SRC = resolve(import.meta.dirname, '../../src')
const FLOOR = ['core', 'db', 'connectors', 'services', 'http', 'runtime', 'cli', 'client']

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name)
    if (e.isDirectory()) return sourceFiles(path)
    return /\.tsx?$/.test(e.name) && !e.name.endsWith('.d.ts') ? [path] : []
  })
}

/** Relative imports of a file that stay at run time (not `import type`, not all-`type` specifiers). */
function valueImports(file: string): string[] {
  const text = readFileSync(file, 'utf8')
  const out: string[] = []
  for (const m of text.matchAll(/^(import|export)\s+(type\s+)?([^'";]*?)\s*from\s+'(\.[^']+)'/gms)) {
    if (m[2]) continue
    const names = /\{([^}]*)\}/.exec(m[3] ?? '')
    if (names && !/\*|^\s*\w+\s*,/.test(m[3]!) && names[1]!.split(',').map((n) => n.trim()).filter(Boolean).every((n) => n.startsWith('type '))) continue
    out.push(resolve(dirname(file), m[4]!))
  }
  for (const m of text.matchAll(/^import\s+'(\.[^']+)'/gm)) out.push(resolve(dirname(file), m[1]!))
  return out
}

const files = sourceFiles(SRC)

describe('layout', () => {
  it('src/core imports nothing from a floor above it', () => {
    const upward = files
      .filter((f) => relative(SRC, f).startsWith('core/'))
      .flatMap((f) => [...readFileSync(f, 'utf8').matchAll(/from\s+'(\.[^']+)'/g)].map((m) => ({ f, to: resolve(dirname(f), m[1]!) })))
      .filter(({ to }) => !relative(SRC, to).startsWith('core/'))
      .map(({ f, to }) => `${relative(SRC, f)} → ${relative(SRC, to)}`)
    expect(upward).toEqual([])
  })

  it('floors import only downward: db and connectors use core, services those, http those', () => {
    const rank = (f: string) => FLOOR.indexOf(relative(SRC, f).split('/')[0]!)
    const wrong = files
      .filter((f) => ['db', 'connectors', 'services', 'http'].includes(relative(SRC, f).split('/')[0]!))
      .flatMap((f) => [...readFileSync(f, 'utf8').matchAll(/from\s+'(\.[^']+)'/g)].map((m) => ({ f, to: resolve(dirname(f), m[1]!) })))
      // db and connectors sit side by side on one floor and never import each other.
      .filter(({ f, to }) => rank(to) > rank(f) || (rank(f) <= 2 && rank(to) <= 2 && rank(to) !== rank(f) && rank(to) !== 0))
      .map(({ f, to }) => `${relative(SRC, f)} → ${relative(SRC, to)}`)
    expect(wrong).toEqual([])
  })

  it('only src/db imports drizzle-orm: the database is private to the store (no store.db outside)', () => {
    const outside = files
      .filter((f) => !relative(SRC, f).startsWith('db/'))
      .filter((f) => /from\s+'drizzle-orm[/']|\bstore\.db\b/.test(readFileSync(f, 'utf8')))
      .map((f) => relative(SRC, f))
    expect(outside).toEqual([])
  })

  it('no module imports itself back through run-time imports', () => {
    const graph = new Map(files.map((f) => [f, valueImports(f).filter((to) => files.includes(to))]))
    const cycles: string[] = []
    const state = new Map<string, 'open' | 'done'>()
    const walk = (f: string, path: string[]) => {
      if (state.get(f) === 'done') return
      if (state.get(f) === 'open') { cycles.push([...path.slice(path.indexOf(f)), f].map((p) => relative(SRC, p)).join(' → ')); return }
      state.set(f, 'open')
      for (const to of graph.get(f) ?? []) walk(to, [...path, f])
      state.set(f, 'done')
    }
    for (const f of files) walk(f, [])
    expect(cycles).toEqual([])
  })
})
