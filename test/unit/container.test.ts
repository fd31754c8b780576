// The Dockerfile and compose.yaml keep what production relies on. (No container engine runs
// here: .ci/run replays the Dockerfile's build and start steps on the host with
// scripts/dockerfile-on-host.ts; this test checks the files' essentials.)
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { commandOf, parseDockerfile, type Instruction } from '../../scripts/dockerfile-on-host.ts'

const root = join(import.meta.dirname, '..', '..')
const instructions = parseDockerfile(readFileSync(join(root, 'Dockerfile'), 'utf8'))
const stages: Instruction[][] = []
for (const ins of instructions) {
  if (ins.op === 'FROM') stages.push([])
  stages.at(-1)?.push(ins)
}
const last = stages.at(-1)!
const one = (op: string) => last.filter((i) => i.op === op)

describe('Dockerfile', () => {
  it('is multi-stage: builds with npm ci and npm run build, ships dist/ and production dependencies only', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2)
    const runs = instructions.filter((i) => i.op === 'RUN').map((i) => i.args)
    expect(runs.some((r) => /npm ci\b(?!.*--omit=dev)/.test(r))).toBe(true)
    expect(runs.some((r) => /npm ci\b.*--omit=dev/.test(r))).toBe(true)
    expect(runs.some((r) => /scripts\/build\.mjs|npm run build/.test(r))).toBe(true)
    expect(runs.every((r) => !/npm install\b/.test(r))).toBe(true)
    const copies = one('COPY').map((i) => i.args)
    expect(copies.some((c) => c.startsWith('--from=') && c.includes('/dist'))).toBe(true)
    expect(copies.some((c) => c === '. .' || c.startsWith('. '))).toBe(false)
    expect(commandOf(one('CMD')[0]!.args)).toEqual(['node', 'dist/main.mjs'])
  })

  it('runs as a non-root user, with a data volume, a health check on /healthz and a listener other containers reach', () => {
    const user = one('USER').at(-1)?.args.trim()
    expect(user).toBeTruthy()
    expect(['root', '0', '0:0']).not.toContain(user)
    const env = one('ENV').map((i) => i.args).join(' ')
    const dataDir = env.match(/RUNRELAY_DATA_DIR=(\S+)/)?.[1]
    expect(dataDir).toBe('/data')
    expect(one('VOLUME').map((i) => i.args.trim())).toContain(dataDir)
    expect(one('COPY').some((i) => i.args.includes('--chown=node:node') && i.args.trim().endsWith(` ${dataDir}`))).toBe(true)
    expect(env).toMatch(/HOST=0\.0\.0\.0/)
    const health = one('HEALTHCHECK')[0]?.args ?? ''
    expect(health).toMatch(/\/healthz/)
    expect(health).toMatch(/--interval=\d+s/)
  })

  it('keeps RUN steps replayable on a host (relative paths) and the base image on Node 22', () => {
    for (const run of instructions.filter((i) => i.op === 'RUN')) expect(run.args, `Dockerfile:${run.line}`).not.toMatch(/(^|\s)\/\w/)
    for (const from of instructions.filter((i) => i.op === 'FROM')) expect(from.args).toMatch(/^node:22[-\w.]*\s/)
  })

  it('.dockerignore keeps local state and secrets out of the build context', () => {
    const ignored = readFileSync(join(root, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim())
    for (const p of ['node_modules', 'dist', 'data', '.dev.vars', '.env', '.git']) expect(ignored).toContain(p)
  })
})

describe('compose.yaml', () => {
  const compose = parse(readFileSync(join(root, 'compose.yaml'), 'utf8'), { merge: true }) as { services: Record<string, any>; volumes: Record<string, unknown> }
  const services = Object.entries(compose.services)
  const replicas = services.filter(([, s]) => s.build === '.' || s.build?.context === '.')
  const serviceByImage = (re: RegExp) => services.find(([, s]) => re.test(String(s.image)))?.[0]

  it('runs two runrelay replicas on one libSQL server (sqld) and the Redis bus', () => {
    expect(replicas).toHaveLength(2)
    const sqld = serviceByImage(/libsql-server|sqld/)
    const redis = serviceByImage(/^redis:/)
    expect(sqld).toBeTruthy()
    expect(redis).toBeTruthy()
    for (const [name, s] of replicas) {
      expect(s.environment.LIBSQL_URL, name).toBe(`http://${sqld}:8080`)
      expect(s.environment.RUNRELAY_BUS_URL, name).toBe(`redis://${redis}:6379`)
      expect(Object.keys(s.depends_on), name).toEqual(expect.arrayContaining([sqld, redis]))
    }
  })

  it('gives the replicas the same required secrets, their own data volumes, and loopback-only ports', () => {
    const [[, a], [, b]] = replicas as [string, any][]
    for (const key of ['RUNRELAY_ENCRYPTION_KEY', 'RUNRELAY_ROOT_KEY']) {
      expect(a.environment[key]).toMatch(new RegExp(`^\\$\\{${key}:\\?`))
      expect(b.environment[key]).toBe(a.environment[key])
    }
    const volume = (s: any) => String(s.volumes[0]).split(':')
    expect(volume(a)[1]).toBe('/data')
    expect(volume(a)[0]).not.toBe(volume(b)[0])
    for (const [, s] of replicas) for (const p of s.ports) expect(String(p)).toMatch(/^127\.0\.0\.1:/)
    for (const [name, s] of services) if (!replicas.some(([n]) => n === name)) expect(s.ports, `${name} is not published`).toBeUndefined()
  })
})
