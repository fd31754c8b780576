import type { Connector } from './connector.ts'
import type { SecretBox } from './crypto.ts'
import { DEFAULT_POLL_POLICY, PollPolicy } from './domain.ts'

const policies = new WeakMap<object, { defaults: Connector['defaultPollPolicy']; policy: PollPolicy }>()

/**
 * A workflow's poll policy over its connector's defaults and runrelay's. Parsed once per
 * workflow row (rows come from the read cache, so the same object for a while): not on
 * every trigger and tick. The policy returned is shared: read it, never change it.
 */
export function pollPolicyOf(workflow: { pollPolicy: unknown }, connector: Pick<Connector, 'defaultPollPolicy'>): PollPolicy {
  const key = workflow.pollPolicy
  if (key === null || typeof key !== 'object') return PollPolicy.parse({ ...DEFAULT_POLL_POLICY, ...connector.defaultPollPolicy, ...(key as object | null) })
  const hit = policies.get(key)
  if (hit && hit.defaults === connector.defaultPollPolicy) return hit.policy
  const policy = PollPolicy.parse({ ...DEFAULT_POLL_POLICY, ...connector.defaultPollPolicy, ...key })
  policies.set(key, { defaults: connector.defaultPollPolicy, policy })
  return policy
}

/** How long after its run's deadline a callback URL still verifies (a vendor's late final push). */
export const CALLBACK_GRACE_MS = 60 * 60_000
/** The expiry of a run without a deadline's callback URL, counted from its creation. */
const CALLBACK_MAX_LIFE_MS = 8 * 24 * 3_600_000

/** When a run's callback URL stops verifying (ms epoch): its deadline plus a grace period. */
export function callbackExpiry(run: { deadlineAt: number | null; createdAt: number }): number {
  return (run.deadlineAt ?? run.createdAt + CALLBACK_MAX_LIFE_MS) + CALLBACK_GRACE_MS
}

/**
 * The signed callback URL an upstream may POST to for this run, valid until `expiresAt`.
 * The signature covers the run id (the URL's nonce: one per run) and the expiry, so a leaked
 * URL cannot be stretched; the route also refuses it once the run has finished.
 */
export async function callbackUrl(secrets: SecretBox, publicUrl: string, runId: string, expiresAt: number): Promise<string> {
  const exp = Math.ceil(expiresAt / 1000)
  const sig = await secrets.sign(`callback:${runId}:${exp}`)
  // Joined, not a template: a run's binding keeps its URL for the run's life, and V8 keeps a
  // concatenation as a tree of its parts (six nodes here, ~200 B more per run in flight).
  return [publicUrl.replace(/\/+$/, ''), '/v1/callbacks/', runId, '?exp=', exp, '&sig=', sig].join('')
}

/** The signed callback URL of a whole connection, for upstreams with one webhook per account. */
export async function connectionCallbackUrl(secrets: SecretBox, publicUrl: string, connectionId: string): Promise<string> {
  return `${publicUrl.replace(/\/+$/, '')}/v1/connections/${connectionId}/callback?sig=${await secrets.sign(`connection-callback:${connectionId}`)}`
}

export function verifyConnectionCallbackSignature(secrets: SecretBox, connectionId: string, sig: string): Promise<boolean> {
  return secrets.verify(`connection-callback:${connectionId}`, sig)
}

/** Whether `sig` signs this run id with this expiry (seconds); the caller checks the expiry against its clock. */
export async function verifyCallbackSignature(secrets: SecretBox, runId: string, sig: string, exp: string | undefined): Promise<boolean> {
  if (!exp || !/^\d{1,12}$/.test(exp)) return false
  return secrets.verify(`callback:${runId}:${exp}`, sig)
}
