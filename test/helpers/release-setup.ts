/**
 * globalSetup of the release lane (vitest.config.ts): the lane's expensive builds, once, before
 * its files start, so no file waits on or repeats another's build: `npm run build` (dist/, the
 * server packaging.test.ts starts) and the SDK packages (tsup, which examples.test.ts packs and
 * installs). Both run at once; a failed build fails the lane with the build's output.
 */
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { promisify } from 'node:util'
import type { TestProject } from 'vitest/node'
import { buildPackages } from '../../scripts/examples.ts'

const ROOT = join(import.meta.dirname, '..', '..')

declare module 'vitest' {
  export interface ProvidedContext {
    /** ms the release lane's globalSetup spent building the SDK packages (they are in packages/*\/dist). */
    packagesBuildMs: number
    /** ms `npm run build` took in the release lane's globalSetup (dist/ is current). */
    serverBuildMs: number
  }
}

export default async function setup(project: TestProject): Promise<void> {
  const server = (async () => {
    const started = Date.now()
    await promisify(execFile)('npm', ['run', 'build'], { cwd: ROOT, maxBuffer: 16 << 20 }).catch((err) => {
      throw new Error(`npm run build failed in the release lane's setup:\n${err.stdout ?? ''}${err.stderr ?? ''}`)
    })
    return Date.now() - started
  })()
  const [serverBuildMs, packagesBuildMs] = await Promise.all([server, buildPackages()])
  project.provide('serverBuildMs', serverBuildMs)
  project.provide('packagesBuildMs', packagesBuildMs)
}
