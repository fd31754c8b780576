/**
 * globalSetup for the Workers test project (vitest.workers.config.ts).
 *
 * Runs in Node (vitest's main process), NOT in workerd: starts what every Workers test file
 * shares (the fake upstream, the webhook receiver) once, and installs the starter of the
 * test-only libSQL HTTP server (Hrana over HTTP in front of an embedded libSQL database
 * file), of which each test file gets its own (libsql-per-file.ts) as its `LIBSQL_URL`
 * binding. Every server is closed when the lane ends.
 */
/// <reference path="./provided-context.d.ts" />
import type { TestProject } from 'vitest/node'
import { startGenericUpstream } from '../fakes/generic-upstream.ts'
import { startLibsqlHttpServer, type LibsqlHttpServer } from '../../scripts/libsql-http-server.ts'
import { installLibsqlStarter } from './libsql-per-file.ts'
import { startWebhookReceiver } from './webhook-receiver.ts'

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const authToken = 'workers-test-token'
  // controlEndpoints: code inside workerd cannot call setFailing(), so it gets
  // POST /__test/failing?on=1|0 instead.
  const servers: LibsqlHttpServer[] = []
  installLibsqlStarter(async () => {
    const server = await startLibsqlHttpServer({ authToken, controlEndpoints: true })
    servers.push(server)
    return server.url
  })
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
    await Promise.all(servers.map((s) => s.close()))
  }
}
