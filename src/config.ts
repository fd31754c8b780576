import * as z from 'zod'
import { DEFAULT_MAX_UPSTREAM_BODY_BYTES } from './core/connector.ts'

const flag = z.enum(['0', '1', 'true', 'false', '']).optional().transform((v) => v === '1' || v === 'true')
/** A URL, or unset (an empty value counts as unset, as OpenTelemetry's own env parsing does). */
const optionalUrl = z.union([z.string().url(), z.literal('')]).optional().transform((v) => v || undefined)

/** runrelay's configuration, parsed once from the environment (every runtime). */
export const ConfigSchema = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(8787),
  HOST: z.string().default('127.0.0.1'),
  /** Directory for the embedded database and the generated encryption key (Node/Deno). */
  RUNRELAY_DATA_DIR: z.string().default('./data'),
  LIBSQL_URL: z.string().optional(),
  LIBSQL_AUTH_TOKEN: z.string().optional(),
  /**
   * A remote database (http:, https:, libsql:) that does not answer a request within this long is
   * treated as unavailable (503 store_unavailable, lease renewal failed), instead of every request
   * hanging through a stall. The request may still commit: every write is safe to retry.
   */
  RUNRELAY_STORE_TIMEOUT_MS: z.coerce.number().int().min(100).max(600_000).default(5_000),
  /** 32 bytes, base64 (or base64url). Generated under the data dir when unset (Node/Deno). */
  RUNRELAY_ENCRYPTION_KEY: z.string().optional(),
  /** The root key; when unset one is created on first start and printed once. */
  RUNRELAY_ROOT_KEY: z.string().regex(/^rr_[\w-]{16,}$/, 'must look like rr_ followed by at least 16 letters, digits, - or _').optional(),
  RUNRELAY_ALLOW_PRIVATE_NETWORK: flag,
  /** Public base URL, for callback URLs; defaults to http://HOST:PORT. */
  RUNRELAY_PUBLIC_URL: z.string().url().optional(),
  RUNRELAY_HEARTBEAT_MS: z.coerce.number().int().min(100).max(300_000).default(15_000),
  RUNRELAY_MAX_BODY_BYTES: z.coerce.number().int().min(1024).max(64 * 1024 * 1024).default(1024 * 1024),
  /** Comma-separated origins allowed to call the API from a browser (CORS), or `*`. */
  RUNRELAY_CORS_ORIGINS: z.string().default('*').transform((v) => (v.trim() === '*' ? '*' : v.split(',').map((o) => o.trim()).filter(Boolean))),
  RUNRELAY_LOG: z.enum(['silent', 'info', 'debug']).default('info'),
  /** Period of the background jobs' loop (schedules, webhook deliveries). */
  RUNRELAY_JOBS_INTERVAL_MS: z.coerce.number().int().min(10).max(60_000).default(1_000),
  /** Webhook retry delays in ms, comma-separated (default 0,5s,5m,30m,2h,5h,10h,10h). */
  RUNRELAY_WEBHOOK_RETRY_SCHEDULE: z.string().regex(/^\d+(,\d+)*$/, 'comma-separated milliseconds').optional()
    .transform((v) => v?.split(',').map(Number)),
  RUNRELAY_WEBHOOK_TIMEOUT_MS: z.coerce.number().int().min(100).max(60_000).default(15_000),
  /** Deadline of one upstream call (all redirect hops and the body included). */
  RUNRELAY_UPSTREAM_TIMEOUT_MS: z.coerce.number().int().min(100).max(600_000).default(30_000),
  /**
   * Bytes of one upstream answer runrelay reads: a longer one is cut off while it streams (never
   * buffered whole) and the call fails with upstream_answer_too_large (see RELIABILITY.md, "What is bounded").
   */
  RUNRELAY_MAX_UPSTREAM_BODY_BYTES: z.coerce.number().int().min(1024).max(256 * 1024 * 1024).default(DEFAULT_MAX_UPSTREAM_BODY_BYTES),
  /** Node: time a client has to send its request headers (slow-loris), and the whole request. */
  RUNRELAY_HEADERS_TIMEOUT_MS: z.coerce.number().int().min(100).max(600_000).default(10_000),
  RUNRELAY_REQUEST_TIMEOUT_MS: z.coerce.number().int().min(100).max(3_600_000).default(60_000),
  /** Bytes a WebSocket subscriber may have unread before it is closed with 4008 (slow consumer). */
  RUNRELAY_WS_MAX_BUFFERED_BYTES: z.coerce.number().int().min(1024).max(1024 * 1024 * 1024).default(4 * 1024 * 1024),
  /** API requests per key per minute (token bucket; shared by the processes on one database, synced every RUNRELAY_RATE_LIMIT_SYNC_MS; per isolate on Workers). 0 turns it off. */
  RUNRELAY_RATE_LIMIT_PER_MINUTE: z.coerce.number().int().min(0).max(10_000_000).default(6_000),
  /** Node/Deno/Bun: how often a process pushes its per-key request counts to the database and reads the others' (one batched upsert). */
  RUNRELAY_RATE_LIMIT_SYNC_MS: z.coerce.number().int().min(50).max(10_000).default(250),
  /** Node/Deno: a bearer token that may read GET /metrics (the root key may too). */
  RUNRELAY_METRICS_TOKEN: z.string().min(16, 'at least 16 characters').optional(),
  /** OpenTelemetry (standard names): traces go over OTLP/HTTP when an endpoint is set; nothing is loaded otherwise. */
  OTEL_EXPORTER_OTLP_ENDPOINT: optionalUrl,
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: optionalUrl,
  OTEL_EXPORTER_OTLP_HEADERS: z.string().optional(),
  OTEL_SERVICE_NAME: z.string().min(1).default('runrelay'),
  OTEL_SDK_DISABLED: flag,
  OTEL_TRACES_EXPORTER: z.string().optional(),
  /** Delay between two exports of finished spans (ms). */
  OTEL_BSP_SCHEDULE_DELAY: z.coerce.number().int().min(10).max(600_000).default(5_000),
  /** Redis/Valkey pub/sub for commit notices between processes sharing a database (redis:// or rediss://); unset: none. */
  RUNRELAY_BUS_URL: z.string().url().refine((v) => /^rediss?:\/\//.test(v), 'must be a redis:// or rediss:// URL').optional(),
  /** Period of the cross-process read of the events table (the safety net under the bus); 0 turns it off (one process only). */
  RUNRELAY_TAIL_INTERVAL_MS: z.coerce.number().int().min(0).max(60_000).default(100),
  /** How long a process's lease on a run lasts unless renewed: a dead process's runs are taken over within it. */
  RUNRELAY_LEASE_TTL_MS: z.coerce.number().int().min(1_000).max(300_000).default(10_000),
  /**
   * This process's name in run leases; unique among the processes running at once (e.g. the pod or unit name).
   * A process started under the name of a dead one takes its runs back at once instead of after the TTL. Default: random per start.
   */
  RUNRELAY_INSTANCE_ID: z.string().regex(/^[\w.:-]{1,100}$/, 'letters, digits, . : _ - (at most 100)').optional(),
})
export type Config = z.infer<typeof ConfigSchema>

export function parseConfig(env: Record<string, string | undefined>): Config {
  const parsed = ConfigSchema.safeParse(env)
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`).join('\n')
    throw new Error(`invalid configuration:\n${lines}`)
  }
  return parsed.data
}

export const VERSION = '0.1.0'
