/**
 * The test lanes: which test file runs in which vitest project. One table, read by
 * vitest.config.ts (the projects) and by test/unit/lanes.test.ts (every test file is in
 * exactly one lane). Lanes are directories with a few named exceptions, so a new file lands
 * in its directory's lane without an edit here.
 *
 * `npm test` runs DEV_LANES (what a change needs, minutes); `npm run test:all` (and .ci/run)
 * runs every lane; `npm run test:<lane>` one lane.
 */

export interface Lane {
  /** What the lane covers, for the README and `--help`-like listings. */
  about: string
  include: string[]
  exclude?: string[]
}

/** Files that live in a directory of one lane but belong to another (slow tools, builds, browsers). */
const BROWSER = ['test/e2e/dashboard.test.ts', 'test/e2e/dashboard-manage.test.ts', 'test/e2e/docs.test.ts']
const RELEASE = [
  'test/e2e/packaging.test.ts', 'test/e2e/worker-bundle.test.ts', 'test/e2e/dev-worker.test.ts',
  'test/packages/examples.test.ts', 'test/packages/client-size.test.ts', 'test/packages/publish.test.ts', 'test/packages/sdk.test.ts',
]
const CLUSTER = ['test/reliability/crash.test.ts']

export const LANES = {
  unit: { about: 'pure modules and one embedded store per file, no server', include: ['test/unit/**/*.test.ts'] },
  api: {
    about: 'the Node server on loopback: routes, streams, fakes, the SDK against it',
    include: ['test/integration/**/*.test.ts', 'test/e2e/**/*.test.ts', 'test/packages/**/*.test.ts'],
    exclude: [...BROWSER, ...RELEASE],
  },
  runtimes: {
    about: 'the conformance suite on Node, Deno, Bun and workerd (wrangler dev), and the Deno runtime',
    include: ['test/conformance/**/*.test.ts', 'test/deno/**/*.test.ts'],
  },
  workers: { about: 'the Worker and its Durable Objects inside workerd (@cloudflare/vitest-plugin)', include: ['test/workers/**/*.test.ts'] },
  reliability: {
    about: 'stress on one Node server: reconnect storms, slow consumers, fuzzing, upstream faults, hardening, secrets',
    include: ['test/reliability/**/*.test.ts'],
    exclude: CLUSTER,
  },
  cluster: {
    about: 'several server processes on one database, a real redis-server bus, SIGKILL and SIGTERM rounds',
    include: ['test/multiprocess/**/*.test.ts', ...CLUSTER],
  },
  browser: { about: 'pages in headless Chromium (dashboard, /docs)', include: BROWSER },
  release: {
    about: 'what ships: the lock, `npm run build`, the Worker bundle (wrangler dry runs), the SDK packed and installed from tarballs',
    include: RELEASE,
  },
} satisfies Record<string, Lane>

export type LaneName = keyof typeof LANES

/** The lanes `npm test` runs: what a developer needs after a change. */
export const DEV_LANES: LaneName[] = ['unit', 'api', 'runtimes', 'workers']
