import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { Command, CommanderError } from 'commander'
import { CliError, EXIT } from './api.ts'
import { registerAccount } from './commands/account.ts'
import { registerCatalog } from './commands/catalog.ts'
import { registerDelivery } from './commands/delivery.ts'
import { registerRuns } from './commands/runs.ts'
import { configPath, DEFAULT_URL } from './config.ts'
import type { Io } from './output.ts'
import { makeContext } from './shared.ts'

export { CliError, EXIT } from './api.ts'
export type { Io } from './output.ts'
export { parseVars, webSocketImpl } from './shared.ts'

/**
 * The `runrelay` CLI: every object the API manages, over the typed client generated from the
 * OpenAPI document (packages/sdk). Parsing by commander (per-command `--help`, unknown options
 * refused); tables on a terminal, tab-separated off one, JSON lines with `--json`; exit codes in
 * EXIT (src/cli/api.ts). bin/runrelay.mjs runs the esbuild bundle of this file.
 */

const stdinText = async (): Promise<string> => {
  const chunks: Buffer[] = []
  for await (const c of process.stdin) chunks.push(c as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}

/** Ask on the terminal; a secret is not echoed. */
async function ask(question: string, secret = false): Promise<string> {
  const { createInterface } = await import('node:readline')
  const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true })
  if (secret) {
    // Echo nothing of what is typed (readline writes each keystroke through _writeToOutput).
    // (Not in Node's types: set on the instance. Its output is process.stderr, given above.)
    Object.assign(rl, { _writeToOutput: (s: string) => { if (s.startsWith(question)) process.stderr.write(question) } })
  }
  try {
    return await new Promise<string>((resolve) => rl.question(question, resolve))
  } finally {
    if (secret) process.stderr.write('\n')
    rl.close()
  }
}

const defaultIo = (): Io => {
  // `runrelay … | head`: once the reader is gone, stop quietly instead of dying on EPIPE.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => { if (err.code === 'EPIPE') process.exit(0); throw err })
  return {
    out: (l) => { process.stdout.write(l + '\n') },
    err: (l) => { process.stderr.write(l + '\n') },
    status: process.stderr.isTTY ? (l) => { process.stderr.write(`\r\x1b[2K${l}`) } : undefined,
    tty: process.stdout.isTTY === true,
    columns: process.stdout.columns,
    readStdin: stdinText,
    prompt: process.stdin.isTTY && process.stderr.isTTY ? ask : undefined,
  }
}

/** The version of the runrelay package this CLI belongs to (found from the source or the bundle). */
export function cliVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (let i = 0; i < 5; i++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version: string }
      if (pkg.name === 'runrelay') return pkg.version
    } catch { /* not here */ }
    dir = dirname(dir)
  }
  return '0.0.0'
}

/** Runs the CLI with `argv` (without node and the script); resolves to the exit code. */
export async function main(argv: string[], env: Record<string, string | undefined> = process.env, io: Io = defaultIo()): Promise<number> {
  let exitCode = 0
  const program = new Command('runrelay')
    .description('manage runrelay: tenants, keys, connections, workflows, runs, schedules, webhooks and tokens')
    .version(cliVersion(), '-V, --version')
    .option('--url <url>', `server URL (env RUNRELAY_URL, else the profile's, else ${DEFAULT_URL})`)
    .option('--key <key>', 'API key (env RUNRELAY_KEY, else the profile\'s)')
    .option('--profile <name>', 'a profile saved by `runrelay login` (env RUNRELAY_PROFILE; default: the current one)')
    .option('--json', 'print JSON lines (one JSON value per line) instead of text', false)
    .addHelpText('after', `
exit codes: 0 ok; 1 a followed run ended failed, canceled or timed out; 2 usage or configuration error;
3 the server refused the request (400, 409, 422); 4 not found; 5 unauthorized or missing scope (401, 403);
6 server unreachable, timed out or failing (5xx); 130 interrupted.
config: flags, then RUNRELAY_URL / RUNRELAY_KEY, then the profile file (${configPath(env)}).`)
    .showHelpAfterError('(run with --help for usage)')
    .configureHelp({ showGlobalOptions: true, sortSubcommands: false })
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s.replace(/\n$/, '')), writeErr: (s) => io.err(s.replace(/\n$/, '')) })

  const ctx = makeContext(program, env, io, (code) => { exitCode = code })
  registerAccount(ctx)
  registerCatalog(ctx)
  registerRuns(ctx)
  registerDelivery(ctx)

  try {
    await program.parseAsync(argv, { from: 'user' })
    return exitCode
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.ok : EXIT.usage
    io.err(`runrelay: ${(err as Error).message}`)
    return err instanceof CliError ? err.code : EXIT.usage
  }
}

// Run directly (`node dist/cli.mjs …`, as in the Docker image) rather than imported by bin/runrelay.mjs.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) process.exitCode = await main(process.argv.slice(2))
