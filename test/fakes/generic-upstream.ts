import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'

/**
 * A scriptable poll-only upstream for the `http` connector. A job follows its script, one
 * step per status request (the last step repeats): a status answer, or a misbehaviour
 * (5xx, 429 with Retry-After, a hanging answer, a reset connection, malformed or truncated
 * JSON). The script comes in the trigger body (`script`), else the server default.
 *
 *   POST /jobs            → 201 {"id", "status": "pending"}   (Idempotency-Key honoured)
 *   GET  /jobs/:id        → {"id", "status", "progress", "result"?, "error"?}
 *   POST /jobs/:id/cancel → {"id", "status": "canceled"}
 */
export type Step =
  | { status: string; progress?: number; result?: unknown; error?: string; /** Echo the request's Authorization header in `result.seen` and `message` (a careless vendor). */ echoAuth?: boolean; /** Add `pad: "yyy…"` of this many characters to the result (a large answer made here, not sent in the trigger). */ pad?: number }
  | { http: number; retryAfter?: number; body?: unknown }
  | { hang: true }
  | { reset: true }
  | { malformed: true }
  | { truncated: true }
  /**
   * A status answer of `bytes` bytes of valid JSON, generated while it is written (never held
   * in memory), with backpressure; it stops when the client goes away. `declare` sends a
   * Content-Length (else chunked). The bytes actually written are added to `hugeBytesSent`.
   */
  | { huge: number; declare?: boolean }

export interface Job { id: string; script: Step[]; polls: number; pollTimes: number[]; canceled: boolean; body: unknown; run?: string }

export interface GenericUpstream {
  url: string
  jobs: Map<string, Job>
  /** Trigger requests received, including ones answered from the idempotency cache. */
  triggerRequests: number
  /** Jobs actually created. */
  jobsCreated: number
  /** Jobs created per `run` query parameter of the trigger (POST /jobs?run=<id>), for counting double triggers. */
  jobsByRun: Map<string, number>
  requests: number
  /** Arrival time (ms epoch) of every request, in order. */
  requestTimes: number[]
  /** Bytes written of `huge` answers (what a client read or buffered before it went away). */
  hugeBytesSent: number
  close(): Promise<void>
}

export async function startGenericUpstream(opts: {
  defaultScript?: Step[]
  triggerStep?: Step
  /** Treat every trigger as new, as the five vendors do (none documents Idempotency-Key). */
  ignoreIdempotencyKey?: boolean
  /** Create the job at once, answer the trigger after this long (a request on the wire when a process dies). */
  triggerDelayMs?: number
} = {}): Promise<GenericUpstream> {
  const jobsByRun = new Map<string, number>()
  const jobs = new Map<string, Job>()
  const byKey = new Map<string, string>()
  const sockets = new Set<Socket>()
  let next = 1
  const state = { triggerRequests: 0, jobsCreated: 0, requests: 0, hugeBytesSent: 0 }
  const requestTimes: number[] = []

  const send = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers })
    res.end(JSON.stringify(body))
  }
  const readBody = (req: IncomingMessage) => new Promise<unknown>((resolve) => {
    let data = ''
    req.on('data', (c) => (data += c))
    req.on('end', () => { try { resolve(data ? JSON.parse(data) : null) } catch { resolve(null) } })
  })
  const play = (res: ServerResponse, step: Step, job: Job, auth?: string) => {
    if ('hang' in step) return // never answers; the client's timeout must fire
    if ('reset' in step) return res.socket?.destroy()
    if ('malformed' in step) { res.writeHead(200, { 'content-type': 'application/json' }); return res.end('{"status": runn') }
    if ('truncated' in step) { res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' }); res.write('{"status":"running"'); return res.socket?.destroy() }
    if ('huge' in step) return void streamHuge(res, step.huge, !!step.declare, (n) => { state.hugeBytesSent += n })
    if ('http' in step) return send(res, step.http, step.body ?? { error: `status ${step.http}` }, step.retryAfter !== undefined ? { 'retry-after': String(step.retryAfter) } : {})
    const echo = step.echoAuth ? { result: { ...(step.result as object), seen: auth, link: `https://files.example/report?access=${encodeURIComponent(auth ?? '')}` }, message: `authorized as ${auth}` } : {}
    const result = step.pad ? { ...(step.result as object), pad: 'y'.repeat(step.pad) } : step.result
    send(res, 200, { id: job.id, status: job.canceled ? 'canceled' : step.status, progress: step.progress ?? null, ...(result !== undefined ? { result } : {}), ...(step.error ? { error: step.error } : {}), ...echo })
  }

  const server = createServer(async (req, res) => {
    state.requests++
    requestTimes.push(Date.now())
    const url = new URL(req.url ?? '/', 'http://x')
    const parts = url.pathname.split('/').filter(Boolean)
    if (req.method === 'POST' && url.pathname === '/jobs') {
      state.triggerRequests++
      const body = (await readBody(req)) as { script?: Step[] } | null
      if (opts.triggerStep && !('status' in opts.triggerStep)) {
        return play(res, opts.triggerStep, { id: '', script: [], polls: 0, pollTimes: [], canceled: false, body })
      }
      const key = opts.ignoreIdempotencyKey ? undefined : req.headers['idempotency-key']
      const existing = typeof key === 'string' ? byKey.get(key) : undefined
      if (existing) return send(res, 201, { id: existing, status: 'pending' })
      const id = `job-${next++}`
      state.jobsCreated++
      jobs.set(id, { id, script: body?.script ?? opts.defaultScript ?? [{ status: 'running' }, { status: 'completed', result: { ok: true } }], polls: 0, pollTimes: [], canceled: false, body })
      if (typeof key === 'string') byKey.set(key, id)
      const run = url.searchParams.get('run')
      if (run) { jobsByRun.set(run, (jobsByRun.get(run) ?? 0) + 1); jobs.get(id)!.run = run }
      if (opts.triggerDelayMs) return void setTimeout(() => { if (!res.destroyed) send(res, 201, { id, status: 'pending' }) }, opts.triggerDelayMs)
      return send(res, 201, { id, status: 'pending' })
    }
    const job = parts[0] === 'jobs' && parts[1] ? jobs.get(parts[1]) : undefined
    if (!job) return send(res, 404, { error: 'no such job' })
    if (req.method === 'POST' && parts[2] === 'cancel') {
      job.canceled = true
      return send(res, 200, { id: job.id, status: 'canceled' })
    }
    if (req.method === 'GET' && parts.length === 2) {
      job.pollTimes.push(Date.now())
      const step = job.script[Math.min(job.polls, job.script.length - 1)]!
      job.polls++
      return play(res, step, job, req.headers.authorization)
    }
    send(res, 405, { error: 'method not allowed' })
  })
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)) })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const port = (server.address() as AddressInfo).port
  return {
    url: `http://127.0.0.1:${port}`,
    jobs,
    get triggerRequests() { return state.triggerRequests },
    get jobsCreated() { return state.jobsCreated },
    jobsByRun,
    get requests() { return state.requests },
    get hugeBytesSent() { return state.hugeBytesSent },
    requestTimes,
    async close() {
      for (const s of sockets) s.destroy()
      await new Promise<void>((r) => server.close(() => r()))
    },
  }
}

/** Write `{"status":"running","blob":"xxx…"}` of exactly `total` bytes, 64 KiB at a time, waiting for drain. */
async function streamHuge(res: ServerResponse, total: number, declare: boolean, sent: (n: number) => void): Promise<void> {
  const head = '{"status":"running","blob":"'
  const tail = '"}'
  res.writeHead(200, { 'content-type': 'application/json', ...(declare ? { 'content-length': String(total) } : {}) })
  const chunk = Buffer.alloc(64 * 1024, 'x')
  let left = total - head.length - tail.length
  const write = (b: Buffer | string) => new Promise<boolean>((resolve) => {
    if (res.destroyed || res.socket?.destroyed) return resolve(false)
    const n = typeof b === 'string' ? Buffer.byteLength(b) : b.byteLength
    const ok = res.write(b, () => sent(n))
    if (ok) return resolve(true)
    const done = () => { res.off('drain', done); res.off('close', done); resolve(!res.destroyed) }
    res.once('drain', done)
    res.once('close', done)
  })
  if (!(await write(head))) return
  while (left > 0) {
    const piece = left >= chunk.byteLength ? chunk : chunk.subarray(0, left)
    left -= piece.byteLength
    if (!(await write(piece))) return
  }
  if (await write(tail)) res.end()
}

/** Workflow config for the `http` connector against this fake. */
export const genericWorkflowConfig = {
  trigger: { method: 'POST', path: '/jobs', body: { script: '{{script}}' } },
  upstreamIdPath: 'id',
  status: { method: 'GET', path: '/jobs/{{upstream_id}}' },
  statusPath: 'status',
  progressPath: 'progress',
  resultPath: 'result',
  errorPath: 'error',
  cancel: { method: 'POST', path: '/jobs/{{upstream_id}}/cancel' },
}
