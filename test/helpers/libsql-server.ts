// The project's Hrana (libSQL over HTTP) server in a child process, for database faults:
// SIGSTOP/SIGCONT (a stall), SIGKILL and start again on the same port and file (a restart).
import { freePort, spawnCollecting, type Spawned } from './child.ts'

export interface LibsqlServerProcess {
  port: number
  url: string
  /** Pause the server (SIGSTOP): connections stay open, nothing answers. */
  stall(): void
  /** Resume after `stall()`. */
  resume(): void
  /** SIGKILL it and start it again on the same port and database file. */
  restart(): Promise<void>
  stop(): Promise<void>
  output(): string
}

/** scripts/libsql-http-server.ts on `file` (created if absent), on a free loopback port. */
export async function startLibsqlServer(file: string): Promise<LibsqlServerProcess> {
  const port = await freePort()
  let child!: Spawned
  let log = ''
  const launch = async () => {
    child = spawnCollecting(process.execPath, ['--import', 'tsx', 'scripts/libsql-http-server.ts', file, String(port)])
    const deadline = Date.now() + 30_000
    while (!child.output().includes('listening')) {
      if (Date.now() > deadline || child.proc.exitCode !== null) throw new Error(`libsql-http-server did not start: ${child.output()}`)
      await new Promise((r) => setTimeout(r, 25))
    }
  }
  const kill = async () => {
    if (child.proc.exitCode !== null || child.proc.signalCode !== null) return
    child.proc.kill('SIGCONT')
    child.proc.kill('SIGKILL')
    await child.exited
    log += child.output()
  }
  await launch()
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    stall: () => { child.proc.kill('SIGSTOP') },
    resume: () => { child.proc.kill('SIGCONT') },
    async restart() { await kill(); await launch() },
    stop: kill,
    output: () => log + child.output(),
  }
}
