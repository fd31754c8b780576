// Packaging: the committed lock satisfies `npm ci` on every platform, and `npm run build`
// gives a dist/ server that starts with plain node, serves the API and stops cleanly.
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, inject, it } from 'vitest'
import { freePort, spawnCollecting, waitHealthy } from '../helpers/child.ts'
import { openWs } from '../helpers/clients.ts'
import { api, until } from '../helpers/server.ts'

const root = join(import.meta.dirname, '..', '..')
const scratch = mkdtempSync(join(tmpdir(), 'runrelay-packaging-'))
afterAll(() => rmSync(scratch, { recursive: true, force: true }))

describe('package-lock.json', () => {
  it('lists every optional platform package that some locked package wants', () => {
    const res = spawnSync(process.execPath, ['scripts/lock.mjs', '--check'], { cwd: root, encoding: 'utf8' })
    expect(res.stderr).toBe('')
    expect(res.status).toBe(0)
  })

  it('the check names what a lock written without other platforms lacks', () => {
    const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8'))
    delete lock.packages['node_modules/@deno/win32-x64']
    const broken = join(scratch, 'broken-lock.json')
    writeFileSync(broken, JSON.stringify(lock))
    const res = spawnSync(process.execPath, ['scripts/lock.mjs', '--check', broken], { cwd: root, encoding: 'utf8' })
    expect(res.status).toBe(1)
    expect(res.stderr).toContain('@deno/win32-x64 (wanted by node_modules/deno)')
    expect(res.stderr).toContain('npm run lock')
  })
})

describe('npm run build', () => {
  it('compiles a server that starts with plain node, answers the API and stops on SIGTERM', async () => {
    // In the repository (gitignored), where node_modules resolves @libsql/client as in production.
    // The release lane's globalSetup (test/helpers/release-setup.ts) built it once; a failed build fails there.
    if (inject('serverBuildMs') === undefined) execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'pipe' })
    const outdir = join(root, 'dist')
    const port = await freePort()
    const dataDir = join(scratch, 'data')
    const { proc, output, exited } = spawnCollecting(process.execPath, [join(outdir, 'main.mjs')], {
      cwd: root,
      env: { PATH: process.env.PATH, PORT: String(port), HOST: '127.0.0.1', RUNRELAY_DATA_DIR: dataDir, RUNRELAY_LOG: 'info' },
    })
    try {
      expect(await waitHealthy(`http://127.0.0.1:${port}`, exited, 20_000), output()).toBe(true)
      // Shown once, as with `npm start`: the compiled entry is the same program.
      const rootKey = output().match(/root key \(shown once, keep it\): (rr_\S+)/)?.[1]
      expect(rootKey, output()).toBeTruthy()
      const tenant = await api(`http://127.0.0.1:${port}`, rootKey).post('/v1/tenants', { name: 'built' })
      expect(tenant.status).toBe(201)
      // The WebSocket server is loaded by the first upgrade: the built chunk must be there and work.
      const feed = openWs(`ws://127.0.0.1:${port}/v1/stream`, { authorization: `Bearer ${tenant.body.key.key}` })
      await feed.opened
      await until(() => feed.messages.some((m) => m.type === 'hello'), 5_000, 'the feed hello')
      feed.close()
    } finally {
      proc.kill('SIGTERM')
    }
    expect((await exited).code).toBe(0)
  }, 60_000)
})
