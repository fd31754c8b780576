import { isTerminal, subscribeRun, SubscriptionError, type RunEvent, type RunStatus, type WebSocketConstructor } from '../client/index.ts'
import { CliError, EXIT } from './api.ts'
import { fmtDuration, type Io } from './output.ts'

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏']

/** Follow a run with the client SDK: one line per status change, a live progress line on a terminal; the exit code says how it ended. */
export async function follow(url: string, key: string, runId: string, io: Io, json: boolean, WebSocket: WebSocketConstructor): Promise<number> {
  let status: RunStatus | undefined
  let progress: number | undefined
  let message = ''
  let frame = 0
  let startedAt: number | undefined
  const line = () => `${SPINNER[frame++ % SPINNER.length]} ${status ?? 'connecting'}${progress !== undefined ? ` ${bar(progress)} ${Math.round(progress * 100)}%` : ''}${message ? `  ${message}` : ''}`
  const spin = io.status && !json ? setInterval(() => io.status!(line()), 100) : undefined
  const print = (text: string) => { if (io.status && !json) io.status(''); io.out(text) }
  let lastPct = -1
  const sub = subscribeRun({
    url, token: key, runId, WebSocket,
    onEvent: (e: RunEvent) => {
      if (json) return io.out(JSON.stringify(e))
      if (typeof e.data.progress === 'number') progress = e.data.progress
      if (typeof e.data.message === 'string') message = e.data.message
      if (e.type === 'run.status_changed' || status === undefined) {
        if (e.status === 'running' && startedAt === undefined) startedAt = Date.parse(e.at)
        if (e.status !== status) {
          const took = isTerminal(e.status) && startedAt !== undefined ? ` in ${fmtDuration(Date.parse(e.at) - startedAt)}` : ''
          const err = e.type === 'run.status_changed' && e.data.error && typeof e.data.error === 'object' ? `: ${(e.data.error as { message?: string }).message ?? ''}` : ''
          print(`${time(e.at)} ${e.status}${took}${err}`)
        }
        status = e.status
      } else if (!io.status) {
        // Off a terminal there is no spinner: progress and errors are plain lines of their own.
        if (e.type === 'run.error') print(`${time(e.at)} error: ${String((e.data as { message?: unknown }).message ?? '')}`)
        else if (e.type === 'run.progress' && progress !== undefined && Math.round(progress * 100) !== lastPct) {
          lastPct = Math.round(progress * 100)
          print(`${time(e.at)} progress ${lastPct}%${message ? ` ${message}` : ''}`)
        }
      }
    },
    onStateChange: (s) => { if (s === 'reconnecting' && !json) print('connection lost; reconnecting…') },
  })
  // Ctrl-C stops following (the run goes on) with the conventional code.
  let interrupted = false
  const onSigint = () => { interrupted = true; sub.close() }
  process.once('SIGINT', onSigint)
  try {
    const result = await sub.finished
    if (interrupted) return EXIT.interrupted
    if (result.reason !== 'completed') return EXIT.unavailable
    return result.status === 'completed' ? EXIT.ok : EXIT.runNotCompleted
  } catch (err) {
    if (interrupted) return EXIT.interrupted
    if (err instanceof SubscriptionError) {
      if (err.code === 4004) throw new CliError(`no run ${runId}`, EXIT.notFound)
      if (err.code === 4001 || err.code === 4003) throw new CliError(err.message, EXIT.auth)
      throw new CliError(err.message, EXIT.unavailable)
    }
    throw err
  } finally {
    process.removeListener('SIGINT', onSigint)
    clearInterval(spin)
    if (io.status && !json) io.status('')
  }
}

const bar = (p: number, width = 20) => {
  const n = Math.max(0, Math.min(width, Math.round(p * width)))
  return `[${'#'.repeat(n)}${'-'.repeat(width - n)}]`
}
const time = (iso: string) => new Date(iso).toISOString().slice(11, 19)
