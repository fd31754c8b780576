#!/usr/bin/env node
// `npm run build`: compiles the Node server into dist/ with esbuild, so production starts
// with plain `node dist/main.mjs` (no tsx, no on-the-fly TypeScript: faster and smaller).
// Everything is bundled except the libSQL engine's native addon (@libsql/<platform>), which is
// loaded from node_modules at run time (install with `npm ci --omit=dev`). Bundling the client's
// JavaScript too spares Node resolving and loading a dozen ESM and CommonJS files at start-up.
import { build } from 'esbuild'
import { rmSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const defaultOutdir = `${root}dist`

/** What the server and the CLI bundles share: ESM for Node 20+, split into chunks loaded on use. */
const NODE_BUNDLE = {
  absWorkingDir: root,
  splitting: true,
  outExtension: { '.js': '.mjs' },
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  // The libSQL engine's native addon (@libsql/<platform>) is found by a run-time require; the JS around it is bundled.
  external: ['@libsql/linux-*', '@libsql/darwin-*', '@libsql/win32-*', '@libsql/freebsd-*', '@libsql/android-*'],
  // Bundled CommonJS dependencies (ws) call require(); ESM has none, so give them one.
  banner: { js: "import { createRequire as __runrelayRequire } from 'node:module'; const require = __runrelayRequire(import.meta.url);" },
  // Whitespace and syntax minified (less to parse at start-up), identifiers not: names stay as
  // written for logs, errors and profiles without esbuild's keepNames, whose `__name` call on
  // every closure created was ~3% of the CPU of a poll (issue 26).
  minifyWhitespace: true,
  minifySyntax: true,
  logLevel: 'warning',
}

/**
 * Builds dist/main.mjs, the server (it applies pending migrations as it starts). The entry is a
 * small file that enables the compile cache and then loads the server from dist/chunks/; code only
 * some configurations need (the Redis bus, OpenTelemetry) sits in chunks of its own, loaded on use.
 */
export async function buildServer(outdir = defaultOutdir) {
  rmSync(outdir, { recursive: true, force: true })
  await build({
    ...NODE_BUNDLE,
    entryPoints: { main: 'src/runtime/node/prod.ts' },
    chunkNames: 'chunks/[name]-[hash]',
    outdir,
    sourcemap: 'linked',
  })
  return outdir
}

/**
 * Builds the CLI (src/cli/main.ts) into `<outdir>/cli.mjs`: one minified ESM file with commander,
 * the client and the SDK inside, so `runrelay` starts without loading TypeScript. What only
 * `serve` and `migrate` need (the server) sits in chunks loaded on use. Returns the file's path.
 */
export async function buildCli(outdir = defaultOutdir) {
  const out = `${outdir}/cli.mjs`
  await build({
    ...NODE_BUNDLE,
    entryPoints: { cli: 'src/cli/main.ts' },
    chunkNames: 'chunks/cli-[name]-[hash]',
    outdir,
    // The bundle is written next to others' files only when complete: a second `runrelay` started
    // meanwhile sees the old file or none, never half of one.
    write: false,
  }).then(async (result) => {
    const { mkdirSync, renameSync, writeFileSync } = await import('node:fs')
    const { dirname } = await import('node:path')
    // The entry last: the chunks it imports are in place before it is.
    for (const f of [...result.outputFiles].sort((a, b) => Number(a.path === out) - Number(b.path === out))) {
      mkdirSync(dirname(f.path), { recursive: true })
      const tmp = `${f.path}.${process.pid}.tmp`
      writeFileSync(tmp, f.contents)
      renameSync(tmp, f.path)
    }
  })
  return out
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  console.log(`built ${await buildServer()}`)
  console.log(`built ${await buildCli()}`)
}
