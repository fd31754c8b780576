// Every test file runs in exactly one lane (test/lanes.ts), so `npm run test:all` (and .ci/run)
// runs them all, and `npm test` is the DEV_LANES.
import { readdirSync, readFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { describe, expect, it } from 'vitest'
import { DEV_LANES, LANES, type LaneName } from '../lanes.ts'

const ROOT = join(import.meta.dirname, '..', '..')

/** The glob forms the lanes use (`**` for any directories, `*` within one name) as a RegExp. */
function globToRegExp(glob: string): RegExp {
  let re = ''
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!
    if (glob.startsWith('**/', i)) { re += '(?:.*/)?'; i += 2 } else if (c === '*') re += '[^/]*'
    else re += /[.+?^${}()|[\]\\]/.test(c) ? `\\${c}` : c
  }
  return new RegExp(`^${re}$`)
}

const matches = (file: string, globs: string[] = []) => globs.some((g) => globToRegExp(g).test(file))

/** The lanes a test file (path from the repository root) belongs to. */
const lanesOf = (file: string) => (Object.keys(LANES) as LaneName[]).filter((name) => {
  const lane: { include: string[]; exclude?: string[] } = LANES[name]
  return matches(file, lane.include) && !matches(file, lane.exclude)
})

function testFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name)
    if (e.isDirectory()) return e.name === 'node_modules' ? [] : testFiles(path)
    return /\.test\.[cm]?[jt]sx?$/.test(e.name) ? [relative(ROOT, path)] : []
  })
}

describe('test lanes', () => {
  it('every test file is in exactly one lane', () => {
    const files = testFiles(join(ROOT, 'test'))
    expect(files.length).toBeGreaterThan(50)
    const wrong = files.map((f) => ({ file: f, lanes: lanesOf(f) })).filter((x) => x.lanes.length !== 1)
    expect(wrong, 'files in no lane or in several: add them to test/lanes.ts').toEqual([])
  })

  it('the matcher sees directories and exceptions', () => {
    expect(lanesOf('test/unit/a/b.test.ts')).toEqual(['unit'])
    expect(lanesOf('test/e2e/new.test.ts')).toEqual(['api'])
    expect(lanesOf('test/e2e/dashboard.test.ts')).toEqual(['browser'])
    expect(lanesOf('test/reliability/crash.test.ts')).toEqual(['cluster'])
    expect(lanesOf('test/reliability/new.test.ts')).toEqual(['reliability'])
    expect(lanesOf('test/elsewhere/x.test.ts')).toEqual([])
    expect(globToRegExp('test/unit/**/*.test.ts').test('test/unit/x.test.tsx')).toBe(false)
  })

  it('npm test runs the DEV_LANES, npm run test:all every lane, and each lane has its script', () => {
    const scripts = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).scripts as Record<string, string>
    expect(scripts.test).toBe(`vitest run ${DEV_LANES.map((l) => `--project ${l}`).join(' ')}`)
    expect(scripts['test:all']).toBe('vitest run')
    for (const lane of Object.keys(LANES)) expect(scripts[`test:${lane}`], lane).toBe(`vitest run --project ${lane}`)
    // CI runs every lane.
    expect(readFileSync(join(ROOT, '.ci', 'run'), 'utf8')).toMatch(/^npm run test:all$/m)
  })
})
