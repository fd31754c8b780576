// The dashboard's view of the API: the credential (an API key or a subscriber token, kept in
// this tab's sessionStorage), JSON calls through @runrelay/client (the code users run), token scopes.
import { request, RunRelayError } from '@runrelay/client'

const STORE = 'runrelay.credential'

export interface Run {
  id: string; workflow_id: string; status: string; upstream_status: string | null; upstream_id: string | null
  input: unknown; variables: Record<string, unknown>; runtime_variables: Record<string, unknown>; tags: string[]
  progress: number | null; message: string | null; result: unknown; error: unknown; seq: number
  created_at: string; started_at: string | null; finished_at: string | null; duration_ms: number | null; replay_of?: string | null
}
export interface RunEvent { id: number; run_id: string; seq: number; type: string; at: string; workflow_id: string; status: string; tags: string[]; data: Record<string, unknown> }
export interface PollPolicy { first_interval_ms?: number; max_interval_ms?: number; deadline_ms?: number; max_transient_errors?: number; adaptive?: boolean }
export interface Workflow {
  id: string; name: string; connection_id: string; upstream_workflow_id: string; tags: string[]; input_template?: unknown; poll_policy?: PollPolicy
  config?: Record<string, unknown>; trigger_retry?: string; variables_schema?: unknown
}
export interface Connection { id: string; name: string; provider: string; base_url: string; config: Record<string, unknown>; credential_fields: string[]; rate_limit_per_second: number | null; created_at: string; updated_at: string }
export interface Page<T> { items: T[]; next_cursor: string | null }

export const TERMINAL = new Set(['completed', 'failed', 'canceled', 'timed_out'])
export const STATUSES = ['scheduled', 'queued', 'running', 'paused', 'completed', 'failed', 'canceled', 'timed_out']

/** An API error answer (status, code, message), as the client package throws it. */
export const ApiError = RunRelayError

export const session = {
  credential: sessionStorage.getItem(STORE) ?? '',
  scopes: [] as string[],
  set(credential: string) { this.credential = credential; sessionStorage.setItem(STORE, credential) },
  clear() { this.credential = ''; this.scopes = []; sessionStorage.removeItem(STORE) },
  get isKey() { return this.credential.startsWith('rr_') },
  has(scope: string) { return this.isKey && (this.scopes.includes(scope) || this.scopes.includes('admin')) },
}

/** A subscriber token's scope (its payload, read without verifying: the server does that). */
export function tokenScope(): { r?: string[]; w?: string[]; t?: string[] } {
  try {
    const p = session.credential.split('.')[1]!.replace(/-/g, '+').replace(/_/g, '/')
    return JSON.parse(atob(p + '==='.slice((p.length + 3) % 4))).scope ?? {}
  } catch { return {} }
}

/** One API call; a non-2xx answer throws a RunRelayError with the server's message. */
export function api<T>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
  return request<T>({ token: session.credential }, method, path, body, headers)
}

/** Check a credential: a key reads its scopes, a token one run of its scope. */
export async function signIn(credential: string): Promise<void> {
  session.credential = credential
  if (session.isKey) {
    session.scopes = (await api<{ scopes: string[] }>('GET', '/v1/me')).scopes
  } else {
    const s = tokenScope()
    if (s.r?.length) await api('GET', `/v1/runs/${encodeURIComponent(s.r[0]!)}`)
    else if (!s.w && !s.t) throw new Error('not an API key or a subscriber token')
  }
  session.set(credential)
}
