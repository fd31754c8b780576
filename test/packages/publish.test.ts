import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { exec, ROOT } from '../../scripts/examples.ts'

// Every package as `npm publish` would send it: `prepack` builds it (so a fresh clone packs a
// working package without `npm run build:packages`), the tarball holds dist, README and LICENSE,
// the manifest says where it comes from, and npm has nothing to correct or warn about.
const ALL = ['client', 'react', 'vue', 'svelte', 'elements', 'sdk'] as const
const manifest = (p: string) => JSON.parse(readFileSync(join(ROOT, 'packages', p, 'package.json'), 'utf8'))

describe('packages ready to publish', () => {
  it('share one version, with a changelog section, and declare repository, keywords, engines and license', () => {
    const versions = new Set(ALL.map((p) => manifest(p).version))
    expect(versions.size).toBe(1)
    const changelog = readFileSync(join(ROOT, 'packages', 'CHANGELOG.md'), 'utf8')
    expect(changelog).toContain(`\n## ${[...versions][0]}\n`)
    for (const p of ALL) {
      const m = manifest(p)
      expect(m.name).toBe(`@runrelay/${p}`)
      expect(m.repository).toEqual({ type: 'git', url: 'git+https://github.com/runrelay/runrelay.git', directory: `packages/${p}` })
      expect(m.keywords).toContain('runrelay')
      expect(m.engines).toEqual({ node: '>=20' })
      expect(m.license).toBe('MIT')
      expect(m.publishConfig).toEqual({ access: 'public' })
      expect(m.scripts.prepack).toBe('npm run build')
      expect(m.files).toEqual(['dist', 'README.md', 'LICENSE'])
      // A package that depends on another of ours pins the shared version.
      for (const [dep, range] of Object.entries<string>(m.dependencies ?? {})) if (dep.startsWith('@runrelay/')) expect(range).toBe(m.version)
      expect(readFileSync(join(ROOT, 'packages', p, 'LICENSE'), 'utf8')).toBe(readFileSync(join(ROOT, 'packages', 'client', 'LICENSE'), 'utf8'))
    }
  })

  for (const p of ALL) {
    it(`${p}: npm publish --dry-run builds it (prepack) and ships dist, README and LICENSE, with no warning but the login one`, async () => {
      const r = await exec('npm', ['publish', '--dry-run', '--json', '-w', `packages/${p}`], { timeoutMs: 240_000 })
      // npm prints the build's output and then its JSON report on stdout.
      const report = JSON.parse(r.stdout.slice(r.stdout.lastIndexOf('\n{') + 1))
      const files = (report[`@runrelay/${p}`] ?? report).files.map((f: { path: string }) => f.path).sort()
      expect(r.stdout).toMatch(/Build success/)
      expect(files).toEqual(expect.arrayContaining(['LICENSE', 'README.md', 'package.json', 'dist/index.js', 'dist/index.d.ts']))
      expect(files.filter((f: string) => !/^(LICENSE|README\.md|package\.json|dist\/.+)$/.test(f))).toEqual([])
      const warnings = r.stderr.split('\n').filter((l) => /npm (warn|error)/i.test(l) && !/requires you to be logged in/.test(l))
      expect(warnings).toEqual([])
    }, 240_000)
  }
})
