#!/usr/bin/env node
// `npm run lock`: regenerates package-lock.json so that `npm ci` works on every platform.
//
// Why: `npm install` in a tree that already has node_modules can write a lock without the
// other platforms' optional packages (deno's @deno/<os>-<cpu>, for one), which `npm ci` then
// refuses. Resolving the lock alone (--package-lock-only) in a scratch directory with no
// node_modules lists every platform. Run it after merging package.json changes, then `npm ci`.
// `node scripts/lock.mjs --check [lock.json]` only verifies a lock (the committed one by default; no network).
import { execFileSync } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))

/** Names of optional dependencies that some entry of the lock declares but the lock does not list. */
export function missingOptionalPackages(lock) {
  const packages = lock.packages ?? {}
  const missing = new Set()
  for (const [path, entry] of Object.entries(packages)) {
    for (const name of Object.keys(entry.optionalDependencies ?? {})) {
      // Node resolution: <path>/node_modules/<name>, then each ancestor's node_modules.
      let found = false
      for (let dir = path; ; dir = dir.includes('/node_modules/') ? dir.slice(0, dir.lastIndexOf('/node_modules/')) : '') {
        if (packages[`${dir ? `${dir}/` : ''}node_modules/${name}`]) { found = true; break }
        if (!dir) break
      }
      if (!found) missing.add(`${name} (wanted by ${path || 'the root'})`)
    }
  }
  return [...missing].sort()
}

/** Workspace folders (plain paths and `dir/*` patterns) whose package.json npm must see. */
function workspaceDirs(pkg) {
  const patterns = Array.isArray(pkg.workspaces) ? pkg.workspaces : pkg.workspaces?.packages ?? []
  return patterns.flatMap((p) => {
    if (!p.endsWith('/*')) return [p]
    const base = p.slice(0, -2)
    return existsSync(join(root, base)) ? readdirSync(join(root, base)).map((d) => `${base}/${d}`) : []
  }).filter((d) => existsSync(join(root, d, 'package.json')))
}

function check(lockPath) {
  const missing = missingOptionalPackages(JSON.parse(readFileSync(lockPath, 'utf8')))
  if (missing.length) {
    console.error(`package-lock.json lacks optional packages that npm ci needs on some platform:\n  ${missing.join('\n  ')}\nrun: npm run lock`)
    process.exit(1)
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const lockPath = join(root, 'package-lock.json')
  const checkAt = process.argv.indexOf('--check')
  if (checkAt >= 0) {
    const target = process.argv[checkAt + 1] ?? lockPath
    check(target)
    console.log(`${target} lists every platform's optional packages`)
  } else {
    const scratch = mkdtempSync(join(tmpdir(), 'runrelay-lock-'))
    try {
      const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
      cpSync(join(root, 'package.json'), join(scratch, 'package.json'))
      for (const dir of workspaceDirs(pkg)) {
        mkdirSync(join(scratch, dir), { recursive: true })
        cpSync(join(root, dir, 'package.json'), join(scratch, dir, 'package.json'))
      }
      // Keep the versions already locked where package.json still allows them (a merge's
      // conflict markers make the old lock unreadable: then resolve afresh).
      if (existsSync(lockPath)) {
        try { JSON.parse(readFileSync(lockPath, 'utf8')); cpSync(lockPath, join(scratch, 'package-lock.json')) } catch { console.warn('package-lock.json is not valid JSON; resolving afresh') }
      }
      const resolve = () => execFileSync('npm', ['install', '--package-lock-only', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: scratch, stdio: 'inherit' })
      resolve()
      // A kept lock can still miss a package's other-platform optional packages (npm keeps the
      // entry as it was): drop the entries that want them, and let npm resolve those again.
      const scratchLock = join(scratch, 'package-lock.json')
      const lock = JSON.parse(readFileSync(scratchLock, 'utf8'))
      const wanting = new Set(missingOptionalPackages(lock).map((m) => m.replace(/^.* \(wanted by (.*)\)$/, '$1')))
      if (wanting.size) {
        for (const path of wanting) delete lock.packages[path]
        writeFileSync(scratchLock, JSON.stringify(lock, null, 2) + '\n')
        resolve()
      }
      check(scratchLock)
      cpSync(join(scratch, 'package-lock.json'), lockPath)
      console.log(`wrote ${lockPath}; now: npm ci`)
    } finally {
      rmSync(scratch, { recursive: true, force: true })
    }
  }
}
