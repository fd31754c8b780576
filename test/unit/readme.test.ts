import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { ConfigSchema } from '../../src/config.ts'

describe('README', () => {
  const readme = readFileSync('README.md', 'utf8')
  it('documents every configuration variable', () => {
    const missing = Object.keys(ConfigSchema.shape).filter((name) => !readme.includes(`\`${name}\``))
    expect(missing).toEqual([])
  })
  it('shows the quick start commands that CI and newcomers use', () => {
    for (const cmd of ['npm install', 'npm start', 'npm test']) expect(readme).toContain(cmd)
    expect(readFileSync('.ci/run', 'utf8')).toContain('npm test')
  })
})
