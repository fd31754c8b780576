/**
 * Vitest config for tests that run INSIDE workerd (Cloudflare Workers runtime)
 * via @cloudflare/vitest-plugin 1.5 (the successor of @cloudflare/vitest-pool-workers) + vitest 4.
 *
 *   WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false \
 *     npx vitest run --config vitest.workers.config.ts
 *
 * Separate from vitest.config.ts (plain Node tests). Shape for the plugin
 * (as in pool-workers 0.23) / vitest 4: the old `defineWorkersConfig` + `test.poolOptions.workers`
 * is gone; the pool is installed by the `cloudflareTest()` Vite plugin, whose
 * options may be a function receiving `inject` (values `provide()`d by
 * globalSetup, which runs in Node before the pool starts).
 *
 * How workerd reaches the Node-side libSQL test server: plain outbound
 * `fetch('http://127.0.0.1:<port>/v2/pipeline')` from the Worker/DO. Miniflare
 * routes global fetch through its "internet" network service, which allows
 * private/loopback addresses, so no `outboundService` shim is needed and the
 * requests take the same path as production fetches to Turso (the client is
 * `@libsql/client/web` with its own fetch). The URL is passed in as the
 * `LIBSQL_URL` binding (so Worker and Durable Object code read it from `env`
 * like production code). Each test file has its own server (test/workers/libsql-per-file.ts):
 * the pool calls the options function below once per file's workerd.
 *
 * Static worker shape (entry, compat date/flags, DO binding + migration) is in
 * test/workers/wrangler.test.toml so it parses through the same wrangler config
 * loader as the real wrangler.toml; only the per-run URL/token are inline.
 */
import { cloudflareTest } from '@cloudflare/vitest-plugin'
import { defineConfig } from 'vitest/config'
import { LANES } from './test/lanes.ts'
import { startFileLibsql } from './test/workers/libsql-per-file.ts'

process.env.WRANGLER_SEND_METRICS ??= 'false'
process.env.CLOUDFLARE_CF_FETCH_ENABLED ??= 'false'

export default defineConfig({
  plugins: [
    // Called for each test file's workerd: each file gets its own libSQL server (and outage switch).
    cloudflareTest(async ({ inject }) => ({
      wrangler: { configPath: './test/workers/wrangler.test.toml' },
      miniflare: {
        bindings: {
          LIBSQL_URL: await startFileLibsql(),
          LIBSQL_AUTH_TOKEN: inject<string>('libsqlAuthToken'),
          UPSTREAM_URL: inject<string>('upstreamUrl'),
          WEBHOOK_RECEIVER_URL: inject<string>('webhookReceiverUrl'),
        },
      },
    })),
  ],
  test: {
    name: 'workers',
    include: LANES.workers.include,
    globalSetup: ['test/workers/global-setup.ts'],
    // Two files at once (RUNRELAY_WORKERS_FILES to change): each file has its own workerd (the
    // plugin's isolation; reusing one across files let earlier files' runs still polling slow the
    // next file's) and its own libSQL server (test/workers/libsql-per-file.ts).
    maxWorkers: Number(process.env.RUNRELAY_WORKERS_FILES ?? 2),
    // After the Node lanes of `npm test` (vitest.config.ts: GROUP).
    sequence: { groupOrder: 1 },
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
})
