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
 * like production code) and is also available to tests via `inject('libsqlUrl')`.
 *
 * Static worker shape (entry, compat date/flags, DO binding + migration) is in
 * test/workers/wrangler.test.toml so it parses through the same wrangler config
 * loader as the real wrangler.toml; only the per-run URL/token are inline.
 */
import { cloudflareTest } from '@cloudflare/vitest-plugin'
import { defineConfig } from 'vitest/config'

process.env.WRANGLER_SEND_METRICS ??= 'false'
process.env.CLOUDFLARE_CF_FETCH_ENABLED ??= 'false'

export default defineConfig({
  plugins: [
    cloudflareTest(({ inject }) => ({
      wrangler: { configPath: './test/workers/wrangler.test.toml' },
      miniflare: {
        bindings: {
          LIBSQL_URL: inject<string>('libsqlUrl'),
          LIBSQL_AUTH_TOKEN: inject<string>('libsqlAuthToken'),
          UPSTREAM_URL: inject<string>('upstreamUrl'),
          WEBHOOK_RECEIVER_URL: inject<string>('webhookReceiverUrl'),
        },
      },
    })),
  ],
  test: {
    name: 'workers',
    include: ['test/workers/**/*.test.ts'],
    globalSetup: ['test/workers/global-setup.ts'],
    // The libSQL outage switch is global to the test server: files must not overlap.
    fileParallelism: false,
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
})
