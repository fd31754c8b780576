import { startTestServer } from '../helpers/server.ts'
import { conformanceSuite } from './suite.ts'

conformanceSuite('node', async () => {
  const s = await startTestServer()
  return { url: s.url, rootKey: s.rootKey, stop: () => s.stop() }
})
