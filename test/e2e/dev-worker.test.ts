// Issue 18: `npm run dev:worker` on a clean copy of the repository (no .dev.vars, no data/)
// serves runrelay on workerd with its own libSQL server; `npm run seed:demo` works against it;
// Ctrl-C stops everything; a crash of one process stops the other. And `npm run deploy`
// refuses to ship without the required secrets (against a fake `wrangler secret list`).
import { execFileSync, spawnSync, type ChildProcess } from 'node:child_process'
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { descendants, freePort, spawnCollecting, waitHealthy } from '../helpers/child.ts'
import { openWs } from '../helpers/clients.ts'
import { until } from '../helpers/server.ts'

const root = join(import.meta.dirname, '..', '..')
const scratch = mkdtempSync(join(tmpdir(), 'runrelay-dev-worker-'))
const started: ChildProcess[] = []
const seenPids: number[] = []
afterAll(() => {
  // After a failed test: the command and everything seen under it (some in groups of their own).
  for (const pid of [...started.flatMap((p) => [...descendants(p.pid!), p.pid!]), ...seenPids]) {
    try { if (/wrangler|workerd|libsql-http-server|dev-worker|esbuild|npm/.test(readFileSync(`/proc/${pid}/cmdline`, 'utf8'))) process.kill(pid, 'SIGKILL') } catch { /* gone */ }
  }
  rmSync(scratch, { recursive: true, force: true })
})

/** The repository's files as a fresh clone has them (tracked and new, not ignored), node_modules linked. */
function cleanCopy(): string {
  const dir = join(scratch, 'repo')
  const files = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: root, encoding: 'utf8' }).split('\0').filter((f) => f && existsSync(join(root, f)))
  execFileSync('tar', ['-cf', join(scratch, 'repo.tar'), '--null', '-T', '-'], { cwd: root, input: files.join('\0') })
  execFileSync('mkdir', ['-p', dir])
  execFileSync('tar', ['-xf', join(scratch, 'repo.tar')], { cwd: dir })
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'))
  return dir
}

const alive = (pid: number) => { try { return !/^\S+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8')) } catch { return false } }

/** `npm run dev:worker` in dir, in its own process group (as a terminal runs it). */
async function devWorker(dir: string) {
  const [port, libsqlPort] = [await freePort(), await freePort()]
  const { proc, output, exited } = spawnCollecting('npm', ['run', 'dev:worker', '--', '--port', String(port), '--show-interactive-dev-session=false'], {
    cwd: dir, detached: true,
    env: { ...process.env, RUNRELAY_DEV_LIBSQL_PORT: String(libsqlPort), LIBSQL_URL: '', LIBSQL_AUTH_TOKEN: '', NO_COLOR: '1', CI: '1', WRANGLER_SEND_METRICS: 'false', CLOUDFLARE_CF_FETCH_ENABLED: 'false' },
  })
  started.push(proc)
  const url = `http://127.0.0.1:${port}`
  expect(await waitHealthy(url, exited, 120_000), output()).toBe(true)
  const pids = descendants(proc.pid!)
  seenPids.push(...pids)
  return { url, proc, exited: exited.then((e) => e.code), pids, libsqlPort, output }
}

describe('npm run dev:worker', () => {
  const dir = cleanCopy()

  it('serves runrelay on workerd from a clean copy; seed:demo runs to completion over a WebSocket; Ctrl-C leaves nothing behind', async () => {
    expect(existsSync(join(dir, '.dev.vars'))).toBe(false)
    expect(existsSync(join(dir, 'data'))).toBe(false)
    const w = await devWorker(dir)
    // Secrets were generated once, into a private .dev.vars; the root key was printed.
    const devVars = readFileSync(join(dir, '.dev.vars'), 'utf8')
    const rootKey = devVars.match(/RUNRELAY_ROOT_KEY="(rr_[\w-]+)"/)?.[1]
    expect(rootKey).toBeTruthy()
    expect(statSync(join(dir, '.dev.vars')).mode & 0o077).toBe(0)
    expect(w.output()).toContain(`root key (shown once, keep it; also in .dev.vars): ${rootKey}`)
    expect(existsSync(join(dir, 'data/worker-dev.db'))).toBe(true)
    // A process for wrangler, its workerd, and the libSQL server.
    expect(w.pids.some((p) => alive(p) && readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('workerd'))).toBe(true)

    // seed:demo against it, as against `npm start` (the root key comes from .dev.vars).
    const seeded = spawnSync('npm', ['run', '--silent', 'seed:demo'], { cwd: dir, encoding: 'utf8', env: { ...process.env, RUNRELAY_URL: w.url, RUNRELAY_KEY: '' }, timeout: 60_000 })
    expect(seeded.status, seeded.stderr).toBe(0)
    const demo = JSON.parse(seeded.stdout.slice(0, seeded.stdout.indexOf('\n}') + 2)) as { key: string; run: string }
    const sub = openWs(`${w.url.replace('http', 'ws')}/v1/runs/${demo.run}/stream?after=0`, { authorization: `Bearer ${demo.key}` })
    await sub.opened
    const done = await until(() => sub.events.find((e) => e.type === 'run.status_changed' && ['completed', 'failed', 'canceled', 'timed_out'].includes(e.status)), 60_000, 'the demo run to finish')
    expect(done.status).toBe('completed')
    expect(sub.events.map((e) => e.seq)).toEqual(sub.events.map((_, i) => i + 1))
    sub.close()

    // Ctrl-C: the terminal signals the whole foreground process group.
    process.kill(-w.proc.pid!, 'SIGINT')
    await until(async () => w.proc.exitCode !== null || w.proc.signalCode !== null, 30_000, 'dev:worker to exit')
    await until(() => w.pids.every((p) => !alive(p)), 45_000, `no process left (${w.pids.filter(alive).map((p) => readFileSync(`/proc/${p}/cmdline`, 'utf8').replace(/\0/g, ' ')).join('; ')})`)
  }, 240_000)

  it('a second run reuses .dev.vars without printing the key; when the libSQL server dies, wrangler is stopped with a clear message', async () => {
    const before = readFileSync(join(dir, '.dev.vars'), 'utf8')
    const w = await devWorker(dir)
    expect(readFileSync(join(dir, '.dev.vars'), 'utf8')).toBe(before)
    expect(w.output()).not.toContain('root key (shown once')
    const libsql = w.pids.find((p) => alive(p) && readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('libsql-http-server.ts'))
    expect(libsql).toBeTruthy()
    process.kill(libsql!, 'SIGKILL')
    expect(await w.exited).not.toBe(0)
    expect(w.output()).toContain('dev:worker: the libSQL server exited (SIGKILL); stopping wrangler dev.')
    await until(() => w.pids.every((p) => !alive(p)), 45_000, 'no process left')
  }, 240_000)
})

describe('npm run deploy', () => {
  // A fake wrangler: `secret list` answers FAKE_SECRETS (or fails like a logged-out wrangler); `deploy` is recorded.
  const fake = join(scratch, 'fake-wrangler.mjs')
  const record = join(scratch, 'deploy-calls.txt')
  writeFileSync(fake, `#!/usr/bin/env node
import { appendFileSync } from 'node:fs'
const args = process.argv.slice(2)
if (args[0] === 'secret' && args[1] === 'list') {
  if (process.env.FAKE_SECRETS === 'logged-out') { console.error('✘ [ERROR] Not logged in.'); process.exit(1) }
  console.log(JSON.stringify(process.env.FAKE_SECRETS.split(',').filter(Boolean).map((name) => ({ name, type: 'secret_text' }))))
} else {
  appendFileSync(${JSON.stringify(record)}, args.join(' ') + '\\n')
}
`)
  chmodSync(fake, 0o755)
  const deploy = (secrets: string, ...args: string[]) => spawnSync('npm', ['run', '--silent', 'deploy', '--', ...args], { cwd: root, encoding: 'utf8', env: { ...process.env, RUNRELAY_WRANGLER: fake, FAKE_SECRETS: secrets }, timeout: 60_000 })
  const calls = () => (existsSync(record) ? readFileSync(record, 'utf8') : '')

  it('names each missing secret and the command that sets it, and does not deploy', () => {
    const res = deploy('LIBSQL_URL,LIBSQL_AUTH_TOKEN')
    expect(res.status).toBe(1)
    expect(res.stderr).toContain('RUNRELAY_ENCRYPTION_KEY is not set')
    expect(res.stderr).toContain('npx wrangler secret put RUNRELAY_ENCRYPTION_KEY')
    expect(res.stderr).toContain('npx wrangler secret put RUNRELAY_ROOT_KEY')
    expect(res.stderr).not.toContain('LIBSQL_URL is not set')
    expect(calls()).toBe('')
  })

  it('says how to log in when the secrets cannot be listed, and does not deploy', () => {
    const res = deploy('logged-out')
    expect(res.status).toBe(1)
    expect(res.stderr).toContain('Not logged in.')
    expect(res.stderr).toContain('npx wrangler login')
    expect(calls()).toBe('')
  })

  it('deploys (with the flags given) when the required secrets are set; a missing token is only a note', () => {
    const res = deploy('LIBSQL_URL,RUNRELAY_ENCRYPTION_KEY,RUNRELAY_ROOT_KEY', '--dry-run')
    expect(res.status, res.stderr).toBe(0)
    expect(res.stderr).toContain('note: LIBSQL_AUTH_TOKEN is not set')
    expect(calls()).toBe('deploy --dry-run\n')
  })
})
