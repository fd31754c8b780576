import { createRunRelay, type RunRelayApi } from '../../packages/sdk/src/client.ts'

/**
 * Exit codes a script can branch on (README "CLI"). 1 is kept for "the run ended, not completed"
 * so `runrelay trigger --follow wf && deploy` reads naturally.
 */
export const EXIT = {
  ok: 0,
  /** A followed or awaited run ended failed, canceled or timed out. */
  runNotCompleted: 1,
  /** Bad usage: unknown command or option, a missing argument, no key configured, a bad file. */
  usage: 2,
  /** The server refused the request (400, 409, 413, 422, …): nothing changed. */
  refused: 3,
  /** No such object (404), or another tenant's. */
  notFound: 4,
  /** The key is missing, unknown, revoked or lacks the scope (401, 403). */
  auth: 5,
  /** The server could not be reached, timed out, or failed (5xx, 429 after retries). */
  unavailable: 6,
  /** Interrupted (Ctrl-C). */
  interrupted: 130,
} as const

/** An error the CLI prints as one line and turns into an exit code. */
export class CliError extends Error {
  readonly code: number
  constructor(message: string, code: number = EXIT.usage) { super(message); this.code = code }
}

/** The exit code for an HTTP status the server answered with. */
export function exitCodeOf(status: number): number {
  if (status === 401 || status === 403) return EXIT.auth
  if (status === 404) return EXIT.notFound
  if (status === 429 || status >= 500) return EXIT.unavailable
  return EXIT.refused
}

type Answer<T> = { data?: T; error?: unknown; response: Response }

export interface Api {
  /** The typed client over every route (generated from the OpenAPI document, see packages/sdk). */
  raw: RunRelayApi
  /** Await a typed call: its data, or a CliError with the server's message and the matching exit code. */
  send<T>(call: Promise<Answer<T>>, what: string): Promise<T>
  /** An untyped call (`runrelay api`): status and parsed body, never throws on an HTTP status. */
  request(method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }>
  url: string
  key: string
}

/** Why a fetch did not reach the server, in a few words (ECONNREFUSED, ENOTFOUND, a timeout). */
export function unreachable(url: string, err: unknown): CliError {
  const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string } }
  const why = e.name === 'TimeoutError' ? 'timed out' : e.cause?.code ?? e.cause?.message ?? e.message ?? String(err)
  return new CliError(`cannot reach ${url} (${why}): is the server running? set RUNRELAY_URL, --url or \`runrelay login\``, EXIT.unavailable)
}

/** The API client the commands use, with one timeout per request. */
export function apiFor(url: string, key: string | undefined, timeoutMs = 30_000): Api {
  if (!key) throw new CliError('no API key: pass --key, set RUNRELAY_KEY, or run `runrelay login`', EXIT.usage)
  const timed = (input: Request) => fetch(input, { signal: AbortSignal.timeout(timeoutMs) })
  const raw = createRunRelay({ url, key, fetch: timed }).api
  return {
    raw, url, key,
    async send<T>(call: Promise<Answer<T>>, what: string): Promise<T> {
      let r: Answer<T>
      try { r = await call } catch (err) { throw unreachable(url, err) }
      if (r.response.ok) return r.data as T
      const e = (r.error as { error?: { message?: string; details?: Array<{ path?: string; message?: string }> } } | undefined)?.error
      const details = e?.details?.length ? ` (${e.details.map((d) => `${d.path ?? ''}: ${d.message ?? ''}`).join('; ')})` : ''
      const message = e?.message ?? (typeof r.error === 'string' ? r.error.slice(0, 200) : 'no error body')
      throw new CliError(`${what}: ${r.response.status} ${message}${details}`, exitCodeOf(r.response.status))
    },
    async request(method: string, path: string, body?: unknown) {
      let res: Response
      try {
        res = await timed(new Request(url + path, {
          method,
          headers: { authorization: `Bearer ${key}`, ...(body !== undefined && { 'content-type': 'application/json' }) },
          body: body === undefined ? undefined : JSON.stringify(body),
        }))
      } catch (err) { throw unreachable(url, err) }
      const text = await res.text()
      let parsed: unknown = text
      try { parsed = text ? JSON.parse(text) : null } catch { /* not JSON: keep the text */ }
      return { status: res.status, body: parsed }
    },
  }
}
