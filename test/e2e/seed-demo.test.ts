import { spawn } from 'node:child_process'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freePort } from '../helpers/child.ts'
import { startTestServer, type TestServer } from '../helpers/server.ts'

// The quick start's second step, as README says it: `npm run seed:demo` finds the server on
// PORT (or RUNRELAY_URL), and a server it cannot reach is one line, not a stack trace.
let server: TestServer
beforeAll(async () => { server = await startTestServer() })
afterAll(async () => { await server?.stop() })

/** `npm run seed:demo` as a child process (not spawnSync: the server under test runs in this process). */
const seed = (env: Record<string, string | undefined>) => new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve, reject) => {
  const child = spawn('npm', ['run', '--silent', 'seed:demo'], { env: { ...process.env, RUNRELAY_URL: undefined, PORT: undefined, ...env } as NodeJS.ProcessEnv, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = '', stderr = ''
  child.stdout.on('data', (d) => (stdout += d))
  child.stderr.on('data', (d) => (stderr += d))
  const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`seed:demo timed out: ${stdout} ${stderr}`)) }, 60_000)
  child.on('close', (status) => { clearTimeout(timer); resolve({ status, stdout, stderr }) })
})

describe('npm run seed:demo', () => {
  it('reaches the server on PORT (a non-default port), seeds a tenant and a run, and says how to follow it', async () => {
    const port = new URL(server.url).port
    const r = await seed({ PORT: port, RUNRELAY_KEY: server.rootKey })
    expect(r.stderr).toBe('')
    expect(r.status).toBe(0)
    const seeded = JSON.parse(r.stdout.slice(0, r.stdout.indexOf('\n}') + 2))
    expect(seeded.run).toMatch(/^run_/)
    expect(r.stdout).toContain(`RUNRELAY_URL=${server.url} RUNRELAY_KEY=${seeded.key} npx runrelay runs follow ${seeded.run}`)
    // RUNRELAY_URL wins over PORT.
    expect((await seed({ PORT: '1', RUNRELAY_URL: server.url, RUNRELAY_KEY: server.rootKey })).status).toBe(0)
  }, 90_000)

  it('an unreachable server, a wrong key or no key: one line on stderr, no stack trace', async () => {
    const port = await freePort()
    const down = await seed({ PORT: String(port), RUNRELAY_KEY: server.rootKey })
    expect(down.status).toBe(1)
    expect(down.stderr.trim().split('\n')).toEqual([`seed:demo: cannot reach runrelay at http://127.0.0.1:${port} (ECONNREFUSED): start it with \`npm start\`, or set RUNRELAY_URL (or PORT) to where it listens`])
    const wrongKey = await seed({ RUNRELAY_URL: server.url, RUNRELAY_KEY: 'rr_wrong_0000000000000000000000' })
    expect(wrongKey.status).toBe(1)
    expect(wrongKey.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^seed:demo: POST \/v1\/tenants: 401 .*\(RUNRELAY_KEY must be the root key\)$/)])
    const noKey = await seed({ RUNRELAY_URL: server.url, RUNRELAY_KEY: '' })
    expect(noKey.status).toBe(2)
    expect(noKey.stderr.trim().split('\n')).toHaveLength(1)
  }, 90_000)
})
