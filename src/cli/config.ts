import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { dirname, join } from 'node:path'
import { CliError, EXIT } from './api.ts'

/** One saved server and key (`runrelay login`). */
export interface Profile { url: string; key: string }
export interface ConfigFile { current?: string; profiles: Record<string, Profile> }

export const DEFAULT_URL = 'http://127.0.0.1:8787'

/** Where profiles live: RUNRELAY_CONFIG, else $XDG_CONFIG_HOME/runrelay/config.json, else ~/.config/runrelay/config.json. */
export function configPath(env: Record<string, string | undefined>): string {
  if (env.RUNRELAY_CONFIG) return env.RUNRELAY_CONFIG
  return join(env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config'), 'runrelay', 'config.json')
}

/** The profile file, or an empty one when there is none. */
export function readConfig(path: string): ConfigFile {
  if (!existsSync(path)) return { profiles: {} }
  try {
    const parsed = JSON.parse(readFileSync(path, 'utf8')) as ConfigFile
    return { current: parsed.current, profiles: parsed.profiles ?? {} }
  } catch (err) {
    throw new CliError(`${path} is not valid JSON (${(err as Error).message}): fix it or run \`runrelay login\` again`, EXIT.usage)
  }
}

/** Write the profile file readable by its owner only (0600, directory 0700): it holds keys. */
export function writeConfig(path: string, config: ConfigFile): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 })
  const tmp = `${path}.${process.pid}.tmp`
  writeFileSync(tmp, JSON.stringify(config, null, 2) + '\n', { mode: 0o600 })
  // The mode given to writeFileSync applies only to a new file (and umask); make sure.
  chmodSync(tmp, 0o600)
  renameSync(tmp, path)
}

/**
 * The server and key a command uses. Each comes from the first that has it: the flag, the
 * environment (RUNRELAY_URL, RUNRELAY_KEY), the profile (--profile, RUNRELAY_PROFILE, the file's
 * current one), then the default URL.
 */
export function resolveTarget(flags: { url?: string; key?: string; profile?: string }, env: Record<string, string | undefined>): { url: string; key?: string; profile?: string } {
  const needProfile = !(flags.url ?? env.RUNRELAY_URL) || !(flags.key ?? env.RUNRELAY_KEY)
  let profile: Profile | undefined
  let name = flags.profile ?? env.RUNRELAY_PROFILE
  if (needProfile || name) {
    const config = readConfig(configPath(env))
    name ??= config.current ?? 'default'
    profile = config.profiles[name]
    if (!profile && (flags.profile ?? env.RUNRELAY_PROFILE)) throw new CliError(`no profile "${name}" in ${configPath(env)}: run \`runrelay login --profile ${name}\``, EXIT.usage)
  }
  const url = (flags.url ?? env.RUNRELAY_URL ?? profile?.url ?? DEFAULT_URL).replace(/\/+$/, '')
  return { url, key: flags.key ?? env.RUNRELAY_KEY ?? profile?.key, profile: profile ? name : undefined }
}
