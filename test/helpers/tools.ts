// The outside tools some lanes need (Chromium, redis-server, python3, deno, bun): present, or a
// clear answer. With CI=true a missing tool fails the lane (the tests must run there); locally
// the tests that need it are skipped with a printed reason and how to install it.
import { existsSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'

const ROOT = join(import.meta.dirname, '..', '..')

/** Debian's Chromium, or CHROMIUM_PATH. */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

export type Tool = 'chromium' | 'redis-server' | 'python3' | 'deno' | 'bun'

const INSTALL: Record<Tool, string> = {
  chromium: `apt-get install -y chromium, or set CHROMIUM_PATH (looked at ${CHROMIUM})`,
  'redis-server': 'apt-get install -y redis-server (.ci/run does it)',
  python3: 'apt-get install -y python3 (.ci/run does it)',
  deno: 'npm ci (the `deno` devDependency)',
  bun: 'npm ci (the `bun` devDependency)',
}

const runs = (cmd: string, args: string[]) => {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 20_000 })
  return r.status === 0
}

const probes: Record<Tool, () => boolean> = {
  chromium: () => existsSync(CHROMIUM),
  'redis-server': () => runs('redis-server', ['--version']),
  python3: () => runs('python3', ['--version']),
  deno: () => existsSync(join(ROOT, 'node_modules', '.bin', 'deno')) && runs(join(ROOT, 'node_modules', '.bin', 'deno'), ['--version']),
  bun: () => existsSync(join(ROOT, 'node_modules', '.bin', 'bun')) && runs(join(ROOT, 'node_modules', '.bin', 'bun'), ['--version']),
}

const known = new Map<Tool, boolean>()

/** Whether `tool` is here (probed once per process). */
export function toolPresent(tool: Tool): boolean {
  let have = known.get(tool)
  if (have === undefined) known.set(tool, (have = probes[tool]()))
  return have
}

/**
 * Whether `what` can run: true when `tool` is here. Missing with CI set (any value but '' or
 * 'false'), it throws, so the file fails instead of skipping; missing locally, it prints why
 * `what` is skipped and returns false (use with `describe.runIf`).
 */
export function needTool(tool: Tool, what: string): boolean {
  if (toolPresent(tool)) return true
  if (inCi()) throw new Error(`CI is set but ${tool} is missing, so ${what} cannot run: ${INSTALL[tool]}`)
  console.warn(`\n!!! ${what} SKIPPED: ${tool} is missing (${INSTALL[tool]}) !!!\n`)
  return false
}

/** CI=true (or any value but '', '0', 'false'): missing tools fail, nothing skips. */
export function inCi(): boolean {
  const ci = process.env.CI
  return ci !== undefined && ci !== '' && ci !== '0' && ci.toLowerCase() !== 'false'
}
