#!/usr/bin/env node
// The runrelay CLI. It runs the esbuild bundle of src/cli/main.ts (one file, no TypeScript at run
// time: it starts in well under 150 ms). `npm run build` writes the bundle to dist/cli.mjs; in a
// checkout without one (a fresh clone after `npm ci`), the first call builds it into
// node_modules/.cache/runrelay-cli/ (about half a second, once), and rebuilds it when a source it
// bundles is newer. Without esbuild (a production install), it runs the sources through tsx.
import { existsSync, readdirSync, statSync } from 'node:fs'
import { fileURLToPath, pathToFileURL } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
// Node 22.1+: cache the compiled bundle on disk, so later starts skip parsing it.
try { (await import('node:module')).enableCompileCache?.(`${root}node_modules/.cache/runrelay-cli/v8`) } catch { /* older Node */ }

const SOURCES = ['src/cli', 'src/client', 'packages/client/src', 'packages/sdk/src', 'src/core']
/** Newest modification time of the sources the bundle is made of (0 when they are not here). */
function sourcesMtime() {
  let newest = 0
  for (const dir of SOURCES) {
    let entries
    try { entries = readdirSync(root + dir) } catch { continue }
    for (const e of entries) if (e.endsWith('.ts')) newest = Math.max(newest, statSync(`${root}${dir}/${e}`).mtimeMs)
  }
  return newest
}
const fresh = (file, newest) => existsSync(file) && statSync(file).mtimeMs >= newest

async function entry() {
  const newest = sourcesMtime()
  for (const candidate of [`${root}dist/cli.mjs`, `${root}node_modules/.cache/runrelay-cli/cli.mjs`]) {
    if (fresh(candidate, newest)) return candidate
  }
  try {
    const { buildCli } = await import('../scripts/build.mjs')
    if (process.stderr.isTTY) process.stderr.write('runrelay: building the CLI (once)…\r')
    const out = await buildCli(`${root}node_modules/.cache/runrelay-cli`)
    if (process.stderr.isTTY) process.stderr.write('\x1b[2K')
    return out
  } catch (err) {
    if (err?.code !== 'ERR_MODULE_NOT_FOUND') throw err
    // No esbuild (dev dependencies omitted): the sources through tsx, slower to start.
    if (process.stderr.isTTY) process.stderr.write('runrelay: no esbuild to build the CLI; running its TypeScript through tsx (slower start; `npm run build` on a machine with dev dependencies makes dist/cli.mjs)\n')
    return null
  }
}

const file = await entry()
const { main } = file ? await import(pathToFileURL(file).href) : await (await import('tsx/esm/api')).tsImport('../src/cli/main.ts', import.meta.url)
process.exitCode = await main(process.argv.slice(2))
