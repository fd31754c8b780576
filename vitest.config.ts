/**
 * The test suite in lanes (vitest projects; the table is test/lanes.ts):
 *   npm test              the lanes a change needs (DEV_LANES: unit, api, runtimes, workers)
 *   npm run test:all      every lane (what .ci/run runs)
 *   npm run test:<lane>   one lane, e.g. `npm run test:cluster`
 * The workers lane runs inside workerd and has its own config (vitest.workers.config.ts).
 */
import { defineConfig, type TestProjectInlineConfiguration } from 'vitest/config'
import { LANES, type LaneName } from './test/lanes.ts'

/** The lanes' own setup, run once per lane before its files (in Node). */
const GLOBAL_SETUP: Partial<Record<LaneName, string[]>> = {
  release: ['test/helpers/release-setup.ts'],
}

/**
 * Files of a lane that run at once (default: the whole run's, RUNRELAY_TEST_FILES or 2). Most
 * files wait on servers and child processes more than on the CPU; the stress lanes
 * (reliability's storms, cluster's process groups and SIGKILL rounds) run one file at a time.
 * So does the release lane: examples.test.ts packs packages/*\/dist while publish.test.ts and
 * sdk.test.ts rebuild it through each package's prepack (tsup cleans dist first).
 */
const MAX_FILES: Partial<Record<LaneName, number>> = { reliability: 1, cluster: 1, browser: 1, release: 1 }

/**
 * The order lanes run in when several are asked for: lanes of one group share the run's file
 * slots; the groups run one after another (vitest wants lanes with their own number of files at
 * once in groups of their own). The workers lane is group 1 (vitest.workers.config.ts).
 */
const GROUP: Record<Exclude<LaneName, 'workers'>, number> = { unit: 0, api: 0, runtimes: 0, reliability: 2, cluster: 3, browser: 4, release: 5 }

const nodeLanes = (Object.keys(LANES) as LaneName[]).filter((name): name is Exclude<LaneName, 'workers'> => name !== 'workers')

export default defineConfig({
  test: {
    maxWorkers: Number(process.env.RUNRELAY_TEST_FILES ?? 2),
    testTimeout: 30_000,
    hookTimeout: 30_000,
    env: { WRANGLER_SEND_METRICS: 'false', CLOUDFLARE_CF_FETCH_ENABLED: 'false' },
    projects: [
      ...nodeLanes.map((name): TestProjectInlineConfiguration => {
        const lane: { include: string[]; exclude?: string[] } = LANES[name]
        return {
          extends: true,
          test: { name, include: lane.include, exclude: lane.exclude ?? [], globalSetup: GLOBAL_SETUP[name] ?? [], sequence: { groupOrder: GROUP[name] }, ...(MAX_FILES[name] ? { maxWorkers: MAX_FILES[name] } : {}) },
        }
      }),
      './vitest.workers.config.ts',
    ],
  },
})
