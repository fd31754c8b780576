// libSQL over HTTP only (libsql://, https://): the Worker has no use for the WebSocket client, and leaving it out keeps the bundle in budget.
import { createClient } from '@libsql/client/http'
import { ensureRootKey } from '../../services/bootstrap.ts'
import { SecretBox } from '../../core/crypto.ts'
import { createGuardedFetch } from '../../core/outbound.ts'
import { systemClock } from '../../core/ports.ts'
import { RateBudget } from '../../core/rate-budget.ts'
import { redactText } from '../../core/redact.ts'
import { openStore } from '../../db/open-http.ts'
import type { Store } from '../../db/store.ts'
import { SubscriberTokens } from '../../http/tokens.ts'
import type { Hono } from 'hono'
import type { AuthEnv } from '../../http/auth.ts'
import type { Platform } from '../compose.ts'
import { workersConfig, type Env, type WorkersConfig } from './env.ts'

export type Log = (msg: string, extra?: Record<string, unknown>) => void

/** What every entry point of an isolate shares: config, store over libSQL's HTTP client, secrets. */
export interface Shared {
  config: WorkersConfig
  store: Store
  secrets: SecretBox
  /** The subscriber-token verifier (same key derivation as the app's): objects check refreshed tokens with it. */
  tokens: SubscriberTokens
  /** Outbound fetch with the literal-URL guard (no DNS API on Workers) and a timeout. */
  fetch: typeof fetch
  /** Per-connection request budget of this isolate (the app's binder and the run objects' share it). */
  budget: RateBudget
  log: Log
}

/**
 * The isolate's cache: Workers give no other place that lives as long as an isolate and is
 * shared by the Worker's requests and the objects in it, so this is the one module-level
 * holder of the Workers runtime (the entry point and the objects keep nothing at module level).
 */
const isolate: { shared?: Promise<Shared>; ready?: Promise<void>; app?: Promise<WorkerApp> } = {}

/** The Worker's HTTP app and the public URL it was built with (the jobs object creates scheduled runs with it). */
export interface WorkerApp { app: Hono<AuthEnv>; publicUrl: string }

/** The isolate's HTTP app, built once by `make` (a failed build is retried by the next request). */
export function isolateApp(make: () => Promise<WorkerApp>): Promise<WorkerApp> {
  return (isolate.app ??= make().catch((err) => { isolate.app = undefined; throw err }))
}

/** The composition root's platform pieces on Workers (runtime/compose.ts), with where the isolate is reachable. */
export function platformOf(s: Shared, publicUrl: () => string): Platform {
  return { store: s.store, secrets: s.secrets, clock: systemClock, config: s.config, fetch: s.fetch, budget: s.budget, publicUrl }
}

/** A structured log line; `where` names the class and handler (e.g. RunObject.alarm). */
export function logger(level: string | undefined): Log {
  return (msg, extra) => {
    if (level === 'silent') return
    // Last guard: a URL credential quoted in a message never reaches the log.
    console.error(redactText(JSON.stringify({ at: new Date().toISOString(), msg, ...extra })))
  }
}

async function build(env: Env): Promise<Shared> {
  const config = workersConfig(env)
  if (!config.LIBSQL_URL) throw new Error('LIBSQL_URL is not set (libsql://…, https://… or http://127.0.0.1:… for local dev)')
  if (!config.RUNRELAY_ENCRYPTION_KEY) throw new Error('RUNRELAY_ENCRYPTION_KEY is not set (32 bytes, base64): wrangler secret put RUNRELAY_ENCRYPTION_KEY')
  // No client-side concurrency limit. The client is shared by every request of the isolate
  // (the Worker's and the objects'), and its limiter (20 by default) starts a queued query
  // from whichever request's query finished: workerd ties that fetch to the other request,
  // cancels it when that request ends, and the queued request fails as "hung" (500). Past
  // 20 concurrent requests (e.g. sockets connecting) 29 of 100 upgrades failed that way.
  // Workers limits each request's own connections.
  const client = createClient({ url: config.LIBSQL_URL, authToken: config.LIBSQL_AUTH_TOKEN, concurrency: Number.MAX_SAFE_INTEGER })
  const store = openStore(client)
  const secrets = await SecretBox.fromKey(config.RUNRELAY_ENCRYPTION_KEY)
  return {
    config,
    store,
    secrets,
    // With the store: a refreshed token over a socket is refused once revoked, as on a request.
    tokens: new SubscriberTokens(secrets, Date.now, store.keys),
    fetch: createGuardedFetch({ allowPrivate: config.RUNRELAY_ALLOW_PRIVATE_NETWORK, timeoutMs: 0, fetch: withDeadline(config.RUNRELAY_UPSTREAM_TIMEOUT_MS) }),
    budget: new RateBudget(),
    log: logger(config.RUNRELAY_LOG),
  }
}

/**
 * fetch with a deadline whose timer is cleared as soon as the answer's body is read (or the
 * request fails). AbortSignal.timeout would leave a timer pending for the whole deadline
 * after every upstream call, and a pending timer keeps a Durable Object in memory: an idle
 * run would stay awake (and could not be evicted) for the whole deadline
 * (RUNRELAY_UPSTREAM_TIMEOUT_MS, 30 s by default) after each poll.
 */
export function withDeadline(ms: number, base: typeof fetch = (i, init) => globalThis.fetch(i, init)): typeof fetch {
  return (async (input: RequestInfo | URL, init?: RequestInit) => {
    const ctrl = new AbortController()
    const timer = setTimeout(() => ctrl.abort(new DOMException('The operation timed out.', 'TimeoutError')), ms)
    const signal = init?.signal ? AbortSignal.any([init.signal, ctrl.signal]) : ctrl.signal
    try {
      const res = await base(input, { ...init, signal })
      if (!res.body) { clearTimeout(timer); return res }
      const body = res.body.pipeThrough(new TransformStream<Uint8Array, Uint8Array>({ flush: () => clearTimeout(timer) }))
      return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers })
    } catch (err) {
      clearTimeout(timer)
      throw err
    }
  }) as typeof fetch
}

/** The isolate's shared dependencies, built once (a failed build is retried by the next caller). */
export function getShared(env: Env): Promise<Shared> {
  return (isolate.shared ??= build(env).catch((err) => { isolate.shared = undefined; throw err }))
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/**
 * Apply the embedded migrations and bootstrap the root key, once per isolate. Isolates may
 * race: migrate() runs its statements in one atomic batch, so the loser's batch fails and
 * rolls back, and its retry finds nothing pending; the root key's hash is unique, so a
 * losing insert fails and the retry finds the key.
 */
export function ensureReady(env: Env): Promise<void> {
  return (isolate.ready ??= (async () => {
    const { store, config, log } = await getShared(env)
    for (let attempt = 1; ; attempt++) {
      try {
        const applied = await store.migrate()
        if (applied) log('migrations applied', { where: 'worker.ensureReady', applied })
        await store.settings.claimDeployment('workers', Date.now())
        const root = await ensureRootKey(store, config.RUNRELAY_ROOT_KEY, Date.now())
        // Without RUNRELAY_ROOT_KEY a key is made once; the log is the only place it is shown.
        if (root.createdKey) console.warn(`runrelay: created a root key (shown once, set RUNRELAY_ROOT_KEY instead): ${root.createdKey}`)
        return
      } catch (err) {
        if (attempt >= 3) throw err
        await sleep(50 * attempt)
      }
    }
  })().catch((err) => { isolate.ready = undefined; throw err }))
}
