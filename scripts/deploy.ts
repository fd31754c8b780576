/**
 * `npm run deploy [-- <wrangler deploy flags>]`: checks that the Worker's required secrets are
 * set (`wrangler secret list`) and only then runs `wrangler deploy`, so a deployment never
 * answers 503 for want of a database URL or key. RUNRELAY_WRANGLER overrides the wrangler
 * command (the tests use a fake one).
 */
import { spawnSync } from 'node:child_process'
import { delimiter, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '..')

/** Secrets the Worker needs, and why; `optional` ones only warn. */
export const REQUIRED_SECRETS: { name: string; why: string; optional?: boolean }[] = [
  { name: 'LIBSQL_URL', why: 'the database: libsql://<db>.turso.io or https://<sqld host>' },
  { name: 'RUNRELAY_ENCRYPTION_KEY', why: '32 random bytes, base64 (openssl rand -base64 32): encrypts connection credentials, signs callbacks' },
  { name: 'RUNRELAY_ROOT_KEY', why: 'the root API key, rr_ followed by at least 16 letters, digits, - or _' },
  { name: 'LIBSQL_AUTH_TOKEN', why: 'the database token (Turso needs one; a sqld without auth does not)', optional: true },
]

/** What is missing among the secret names a Worker has: errors block the deploy, warnings do not. */
export function checkSecrets(present: string[]): { errors: string[]; warnings: string[] } {
  const have = new Set(present)
  const line = (s: (typeof REQUIRED_SECRETS)[number]) => `${s.name} is not set (${s.why}). Set it with: npx wrangler secret put ${s.name}`
  return {
    errors: REQUIRED_SECRETS.filter((s) => !s.optional && !have.has(s.name)).map(line),
    warnings: REQUIRED_SECRETS.filter((s) => s.optional && !have.has(s.name)).map(line),
  }
}

function wrangler(args: string[], capture: boolean) {
  const [cmd, ...pre] = (process.env.RUNRELAY_WRANGLER ?? join(ROOT, 'node_modules/.bin/wrangler')).split(' ')
  return spawnSync(cmd!, [...pre, ...args], {
    cwd: ROOT, encoding: 'utf8', stdio: capture ? ['ignore', 'pipe', 'pipe'] : 'inherit',
    env: { ...process.env, PATH: `${join(ROOT, 'node_modules/.bin')}${delimiter}${process.env.PATH ?? ''}` },
  })
}

function main(): number {
  const passThrough = process.argv.slice(2)
  // `--name`/`--env` choose the Worker whose secrets count.
  const target = passThrough.flatMap((a, i) => (a === '--name' || a === '--env' ? [a, passThrough[i + 1]!] : a.startsWith('--name=') || a.startsWith('--env=') ? [a] : []))
  const listed = wrangler(['secret', 'list', '--format', 'json', ...target], true)
  if (listed.status !== 0) {
    console.error(`deploy: could not list the Worker's secrets (wrangler secret list failed):\n${(listed.stderr || listed.stdout || String(listed.error ?? '')).trim()}`)
    console.error('Log in with `npx wrangler login` (or set CLOUDFLARE_API_TOKEN). For a first deploy, set the secrets first:')
    for (const s of REQUIRED_SECRETS) console.error(`  npx wrangler secret put ${s.name}${s.optional ? '   (if your database needs a token)' : ''}`)
    return 1
  }
  let names: string[]
  try {
    names = (JSON.parse(listed.stdout) as { name: string }[]).map((s) => s.name)
  } catch {
    console.error(`deploy: unexpected answer from wrangler secret list:\n${listed.stdout.slice(0, 500)}`)
    return 1
  }
  const { errors, warnings } = checkSecrets(names)
  for (const w of warnings) console.warn(`deploy: note: ${w}`)
  if (errors.length) {
    console.error(`deploy: not deploying; the Worker would answer 503 without these secrets:\n${errors.map((e) => `  ${e}`).join('\n')}`)
    return 1
  }
  console.log(`deploy: secrets present (${REQUIRED_SECRETS.filter((s) => names.includes(s.name)).map((s) => s.name).join(', ')}); running wrangler deploy`)
  return wrangler(['deploy', ...passThrough], false).status ?? 1
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exit(main())
}
