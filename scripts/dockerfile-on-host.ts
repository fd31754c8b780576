/**
 * Replays the Dockerfile's build and start steps on this machine, for CI without a container
 * engine: `npx tsx scripts/dockerfile-on-host.ts [Dockerfile]`.
 *
 * Each stage gets a directory standing in for its filesystem; WORKDIR, ENV, COPY (from the
 * build context, filtered by .dockerignore, or --from another stage) and RUN are carried out
 * there, with the same commands the image runs. Then the last stage's CMD starts, its
 * HEALTHCHECK command must pass, and SIGTERM must stop it with exit code 0.
 *
 * What this proves: the file's commands, paths, copied files and start command work together.
 * What it does not: the base image (the host's node stands in for node:22), USER and file
 * ownership, VOLUME, and the image's own network and PID-1 behaviour.
 */
import { spawn, spawnSync } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { basename, dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '..')

export interface Instruction { op: string; args: string; line: number }

/** The Dockerfile as instructions: comments dropped, `\` continuations joined. */
export function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = []
  let pending = ''
  let start = 0
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim()
    if (!pending && (line === '' || line.startsWith('#'))) return
    if (!pending) start = i + 1
    if (line.startsWith('#')) return
    pending += (pending ? ' ' : '') + line.replace(/\\$/, '').trim()
    if (line.endsWith('\\')) return
    const m = pending.match(/^(\w+)\s+([\s\S]*)$/)
    if (m) out.push({ op: m[1]!.toUpperCase(), args: m[2]!, line: start })
    pending = ''
  })
  return out
}

/** Exec form (a JSON array) or shell form of RUN/CMD as argv. */
export function commandOf(args: string): string[] {
  return args.trim().startsWith('[') ? (JSON.parse(args) as string[]) : ['sh', '-c', args]
}

function freePort(): Promise<number> {
  return new Promise((r, j) => {
    const s = createServer().once('error', j).listen(0, '127.0.0.1', () => { const p = (s.address() as { port: number }).port; s.close(() => r(p)) })
  })
}

/** Top-level names (and simple globs) from .dockerignore, as a filter over context paths. */
function dockerignore(context: string): (rel: string) => boolean {
  const file = join(context, '.dockerignore')
  const patterns = existsSync(file) ? readFileSync(file, 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#')) : []
  const res = patterns.map((p) => new RegExp(`^${p.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*')}(/|$)`))
  return (rel) => !res.some((re) => re.test(rel) || re.test(basename(rel)))
}

/** Replay the Dockerfile; returns what happened, throws on the first failing step. */
export async function replay(dockerfile = join(ROOT, 'Dockerfile'), log = console.log): Promise<{ stages: string[]; healthy: boolean; exitCode: number | null }> {
  const context = dirname(dockerfile)
  const keep = dockerignore(context)
  const scratch = mkdtempSync(join(tmpdir(), 'runrelay-dockerfile-'))
  const stages = new Map<string, string>()
  let fs = '', workdir = '/', env: Record<string, string> = {}, cmd: string[] | undefined, health: string[] | undefined
  const inStage = (p: string) => join(fs, p.startsWith('/') ? p : join(workdir, p))
  try {
    for (const ins of parseDockerfile(readFileSync(dockerfile, 'utf8'))) {
      const where = `Dockerfile:${ins.line} ${ins.op}`
      switch (ins.op) {
        case 'FROM': {
          const name = ins.args.match(/\bAS\s+(\S+)/i)?.[1] ?? String(stages.size)
          fs = join(scratch, name)
          mkdirSync(fs, { recursive: true })
          stages.set(name, fs)
          workdir = '/'; env = {}; cmd = undefined; health = undefined
          log(`-- stage ${name} (${ins.args.split(/\s+/)[0]}: the host's node ${process.version} stands in)`)
          break
        }
        case 'WORKDIR': workdir = ins.args.trim(); mkdirSync(inStage('.'), { recursive: true }); break
        case 'ENV':
          for (const m of ins.args.matchAll(/(\w+)=("[^"]*"|\S+)/g)) env[m[1]!] = m[2]!.replace(/^"|"$/g, '')
          break
        case 'COPY': {
          const parts = ins.args.split(/\s+/)
          const from = parts.find((p) => p.startsWith('--from='))?.slice(7)
          const paths = parts.filter((p) => !p.startsWith('--'))
          const dest = paths.pop()!
          for (const src of paths) {
            const stage = from ? stages.get(from) : context
            if (!stage) throw new Error(`${where}: unknown stage ${from}`)
            const source = join(stage, src)
            if (!existsSync(source)) throw new Error(`${where}: ${src} does not exist ${from ? `in stage ${from}` : 'in the build context'}`)
            // Docker: a directory's contents go to dest; files go into dest when it is a directory (trailing /, or several sources).
            const intoDir = statSync(source).isFile() && (dest.endsWith('/') || dest === '.' || paths.length > 1)
            const target = intoDir ? join(inStage(dest), basename(src)) : inStage(dest)
            mkdirSync(dirname(target), { recursive: true })
            cpSync(source, target, { recursive: true, verbatimSymlinks: true, filter: from ? undefined : (p) => p === source || keep(p.slice(context.length + 1)) })
          }
          break
        }
        case 'RUN': {
          // Absolute paths would act on this machine, not on the stage's stand-in.
          if (/(^|\s)\/\w/.test(ins.args)) throw new Error(`${where}: use relative paths in RUN so the step can be replayed: ${ins.args}`)
          log(`   RUN ${ins.args}`)
          const [c, ...a] = commandOf(ins.args)
          const r = spawnSync(c!, a, { cwd: inStage('.'), env: { ...process.env, ...env }, stdio: 'inherit' })
          if (r.status !== 0) throw new Error(`${where} failed (exit ${r.status}): ${ins.args}`)
          break
        }
        case 'CMD': cmd = commandOf(ins.args); break
        case 'HEALTHCHECK': health = commandOf(ins.args.replace(/^(--\S+\s+)*CMD\s+/, '')); break
        default: break // USER, VOLUME, EXPOSE, STOPSIGNAL: nothing to replay on the host
      }
    }
    if (!cmd) throw new Error('the last stage has no CMD')
    const port = await freePort()
    // The image listens on 0.0.0.0 inside its own network; on the host, loopback only.
    const runEnv = { ...process.env, ...env, HOST: '127.0.0.1', PORT: String(port), RUNRELAY_DATA_DIR: env.RUNRELAY_DATA_DIR ? inStage(env.RUNRELAY_DATA_DIR) : inStage('data'), RUNRELAY_ROOT_KEY: 'rr_dockerfile_replay_0123456789' }
    log(`   CMD ${cmd.join(' ')} (port ${port})`)
    const proc = spawn(cmd[0]!, cmd.slice(1), { cwd: inStage('.'), env: runEnv, stdio: ['ignore', 'inherit', 'inherit'] })
    const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)))
    let healthy = false
    try {
      for (let i = 0; i < 100 && proc.exitCode === null && !healthy; i++) {
        await new Promise((r) => setTimeout(r, 200))
        if (!health) { healthy = true; break }
        healthy = spawnSync(health[0]!, health.slice(1), { env: runEnv, stdio: 'ignore', timeout: 3_000 }).status === 0
      }
    } finally {
      proc.kill('SIGTERM')
    }
    const exitCode = await exited
    log(`   HEALTHCHECK ${healthy ? 'passed' : 'FAILED'}; SIGTERM -> exit ${exitCode}`)
    return { stages: [...stages.keys()], healthy, exitCode }
  } finally {
    rmSync(scratch, { recursive: true, force: true })
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const result = await replay(process.argv[2] ? resolve(process.argv[2]) : undefined)
  process.exit(result.healthy && result.exitCode === 0 ? 0 : 1)
}
