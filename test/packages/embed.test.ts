import { readFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EMBED_MODULE, renderEmbed } from '../../scripts/embed-elements.ts'
import { EMBED_JS } from '../../src/http/ui/embed.generated.ts'
import { startTestServer, type TestServer } from '../helpers/server.ts'

let server: TestServer
beforeAll(async () => { server = await startTestServer() })
afterAll(async () => { await server?.stop() })

describe('/embed.js', () => {
  it('the embedded bundle is the current build of packages/elements (run npm run embed:generate when this fails)', async () => {
    expect(readFileSync(EMBED_MODULE, 'utf8')).toBe(await renderEmbed())
  })

  it('is served as a cacheable cross-origin script with no eval', async () => {
    const res = await fetch(`${server.url}/embed.js`)
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toMatch(/^text\/javascript/)
    expect(res.headers.get('access-control-allow-origin')).toBe('*')
    expect(res.headers.get('x-content-type-options')).toBe('nosniff')
    const body = await res.text()
    expect(body).toBe(EMBED_JS)
    expect(body).toContain('runrelay-run')
    expect(body).not.toMatch(/\beval\(|new Function\(/)
    const again = await fetch(`${server.url}/embed.js`, { headers: { 'if-none-match': res.headers.get('etag')! } })
    expect(again.status).toBe(304)
  })
})
