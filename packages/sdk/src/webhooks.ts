import { Webhook } from 'standardwebhooks'
import { RunRelayError, type Run, type RunEvent } from './client.ts'

/** The body runrelay posts to a webhook endpoint (Standard Webhooks' envelope): one run event and the run as it was when sent. */
export interface WebhookPayload {
  /** The event type (`run.status_changed`, …). */
  type: string
  timestamp: string
  data: { event: RunEvent; run?: Run }
}

/**
 * Verify a webhook runrelay sent (Standard Webhooks: `webhook-id`, `webhook-timestamp`,
 * `webhook-signature`, at most 5 minutes old) and return its parsed body. `secret` is the
 * endpoint's `whsec_…`; `body` must be the raw request body, not re-serialized JSON.
 * Throws a RunRelayError (`invalid_signature`) when it does not verify.
 */
export function verifyWebhook(secret: string, body: string, headers: Headers | Record<string, string | string[] | undefined>): WebhookPayload {
  const get = (name: string): string => {
    if (typeof (headers as Headers).get === 'function') return (headers as Headers).get(name) ?? ''
    const v = (headers as Record<string, string | string[] | undefined>)[name] ?? (headers as Record<string, string | string[] | undefined>)[name.toLowerCase()]
    return Array.isArray(v) ? v.join(', ') : v ?? ''
  }
  try {
    return new Webhook(secret).verify(body, { 'webhook-id': get('webhook-id'), 'webhook-timestamp': get('webhook-timestamp'), 'webhook-signature': get('webhook-signature') }) as WebhookPayload
  } catch (err) {
    throw new RunRelayError(401, 'invalid_signature', `webhook does not verify: ${(err as Error).message}`)
  }
}

/** Verify an incoming `Request` (Workers, Deno, Bun, Node's fetch-style servers) and return its parsed body. */
export async function verifyWebhookRequest(secret: string, request: Request): Promise<WebhookPayload> {
  return verifyWebhook(secret, await request.text(), request.headers)
}
