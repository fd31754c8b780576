/**
 * globalSetup for the Workers test project (vitest.workers.config.ts).
 *
 * Runs in Node (vitest's main process, Node 22 via `npx`), NOT in workerd:
 * starts the test-only libSQL HTTP server (Hrana over HTTP in front of an
 * embedded libSQL database file) on 127.0.0.1:<random port> and hands its URL
 * to the Workers project with `provide()`. vitest.workers.config.ts reads it
 * with the pool's `inject()` and turns it into the `LIBSQL_URL` binding; tests
 * can also read it with `inject('libsqlUrl')`.
 */
/// <reference path="./provided-context.d.ts" />
import type { TestProject } from 'vitest/node'
import { startGenericUpstream } from '../fakes/generic-upstream.ts'
import { startLibsqlHttpServer } from '../../scripts/libsql-http-server.ts'
import { startWebhookReceiver } from './webhook-receiver.ts'

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const authToken = 'workers-test-token'
  // controlEndpoints: code inside workerd cannot call setFailing(), so it gets
  // POST /__test/failing?on=1|0 instead.
  const server = await startLibsqlHttpServer({ authToken, controlEndpoints: true })
  project.provide('libsqlUrl', server.url)
  project.provide('libsqlAuthToken', authToken)
  // The scriptable poll-only upstream for the `http` connector (each run brings its script).
  const upstream = await startGenericUpstream()
  project.provide('upstreamUrl', upstream.url)
  // Receives the webhooks the jobs object sends (workerd reaches it like the upstream).
  const receiver = await startWebhookReceiver()
  project.provide('webhookReceiverUrl', receiver.url)
  return async () => {
    await receiver.close()
    await upstream.close()
    await server.close()
  }
}
