import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { nodeOf } from '../../scripts/examples.ts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { demoTenant } from '../helpers/live.ts'
import { startTestServer, type TestServer } from '../helpers/server.ts'

// The installed CLI (bin/runrelay.mjs → tsx → src/cli/main.ts) against a live server.
let server: TestServer
let t: Awaited<ReturnType<typeof demoTenant>>
let ok: string, bad: string

const NODE20 = nodeOf(20)
const NODE22 = nodeOf(22)

beforeAll(async () => {
  server = await startTestServer()
  t = await demoTenant(server)
  ok = await t.workflow('quick', { durationMs: 1_500, steps: 2 })
  bad = await t.workflow('doomed', { durationMs: 500, steps: 2, outcome: 'failed' })
})
afterAll(async () => { await server?.stop() })

/** Run the CLI to completion (bounded), capturing its output and exit code. */
function cli(args: string[], env: Record<string, string> = {}, timeoutMs = 30_000, node = process.execPath): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(node, ['bin/runrelay.mjs', ...args], {
      env: { ...process.env, RUNRELAY_URL: server.url, RUNRELAY_KEY: t.key, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = '', stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`cli ${args.join(' ')} timed out; stdout: ${stdout} stderr: ${stderr}`)) }, timeoutMs)
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }) })
  })
}

/** Every stdout line parsed as JSON: throws if any line is not (`--json` prints JSON lines only). */
const jsonLines = (stdout: string) => stdout.trimEnd().split('\n').map((l) => JSON.parse(l))

const statusLines = (stdout: string) => stdout.split('\n').map((l) => /^\d\d:\d\d:\d\d (\w+)/.exec(l)?.[1]).filter(Boolean)

describe('runrelay CLI', () => {
  it('trigger --follow shows the transitions and exits 0 on completed', async () => {
    const r = await cli(['trigger', 'quick', '--var', 'steps=2', '--tag', 'cli', '--follow'])
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/run run_\w+ triggered/)
    expect(statusLines(r.stdout)).toEqual(['queued', 'running', 'completed'])
    expect(r.stdout).toMatch(/completed in \d/)
  })

  it('trigger --follow exits non-zero on failed', async () => {
    const r = await cli(['trigger', bad, '--follow'])
    expect(r.code).toBe(1)
    // A 500 ms run may finish between two polls: running is then never observed.
    expect(statusLines(r.stdout).join(' ')).toMatch(/^queued (running )?failed$/)
    expect(r.stdout).toContain('the demo run was set to fail')
  })

  it('watch follows an existing run; runs list and workflows list print tables', async () => {
    const runId = await t.trigger(ok)
    const w = await cli(['watch', runId])
    expect(w.code).toBe(0)
    expect(statusLines(w.stdout).at(-1)).toBe('completed')
    const runs = await cli(['runs', 'list', '--workflow', 'quick'])
    expect(runs.code).toBe(0)
    expect(runs.stdout).toContain(runId)
    expect(runs.stdout.split('\n')[0]).toMatch(/^ID\s+STATUS/)
    const wfs = await cli(['workflows', 'list', '--json'])
    expect(jsonLines(wfs.stdout).map((x: { name: string }) => x.name).sort()).toEqual(['doomed', 'quick'])
    expect((await cli(['watch', 'run_nope'])).code).toBe(2)
  })

  it('keys create, list and revoke; errors exit 2', async () => {
    const created = await cli(['keys', 'create', '--name', 'ci', '--scopes', 'runs:read', '--json'])
    expect(created.code).toBe(0)
    const key = jsonLines(created.stdout)[0]
    expect(key.key).toMatch(/^rr_/)
    const list = await cli(['keys', 'list'])
    expect(list.stdout).toContain(key.id)
    expect((await cli(['keys', 'revoke', key.id])).stdout).toContain(`revoked ${key.id}`)
    const refused = await cli(['workflows', 'list'], { RUNRELAY_KEY: key.key })
    expect(refused.code).toBe(2)
    expect(refused.stderr).toContain('401')
    expect((await cli(['nonsense'])).code).toBe(2)
    expect((await cli(['trigger', 'no-such-workflow'])).stderr).toContain('no workflow no-such-workflow')
  })

  it('--version, per-command --help, and usage errors exit 2 with a hint', async () => {
    const v = await cli(['--version'])
    expect(v.code).toBe(0)
    expect(v.stdout.trim()).toBe(JSON.parse(readFileSync('package.json', 'utf8')).version)
    const h = await cli(['trigger', '--help'])
    expect(h.code).toBe(0)
    expect(h.stdout).toContain('Usage: runrelay trigger')
    expect(h.stdout).toContain('--follow')
    expect(h.stdout).toContain('--url')
    const bad = await cli(['runs', 'list', '--bogus'])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain("unknown option '--bogus'")
  })

  it('--json prints JSON lines only, and without a TTY the progress is plain lines', async () => {
    const j = await cli(['trigger', 'quick', '--follow', '--json'])
    expect(j.code).toBe(0)
    const [run, ...events] = jsonLines(j.stdout)
    expect(run.id).toMatch(/^run_/)
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1))
    expect(events.at(-1).status).toBe('completed')
    const plain = await cli(['trigger', 'quick', '--follow'])
    expect(plain.stdout + plain.stderr).not.toMatch(/[\r\x1b]/)
  })

  it('a closed pipe (| head -1) ends quietly', async () => {
    const runId = await t.trigger(ok)
    const r = await new Promise<{ code: number | null; stderr: string; out: string }>((resolve, reject) => {
      const child = spawn('sh', ['-c', `"${process.execPath}" bin/runrelay.mjs watch ${runId} --json | head -1`], {
        env: { ...process.env, RUNRELAY_URL: server.url, RUNRELAY_KEY: t.key }, stdio: ['ignore', 'pipe', 'pipe'],
      })
      let stderr = '', out = ''
      child.stderr.on('data', (d) => (stderr += d))
      child.stdout.on('data', (d) => (out += d))
      const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error('pipe case timed out')) }, 20_000)
      child.on('close', (code) => { clearTimeout(timer); resolve({ code, stderr, out }) })
    })
    expect(r.out.trim().split('\n')).toHaveLength(1)
    expect(r.stderr).toBe('')
  })

  // Node 20 has no global WebSocket: the CLI uses `ws` (a dependency). Node 22 uses the global one.
  for (const [name, node] of [['Node 20', NODE20], ['Node 22', NODE22]] as const) {
    it.runIf(node)(`trigger --follow works on ${name}`, async () => {
      const r = await cli(['trigger', 'quick', '--follow'], {}, 30_000, node!)
      expect(r.stderr).toBe('')
      expect(r.code).toBe(0)
      expect(statusLines(r.stdout).at(-1)).toBe('completed')
    })
  }
})
