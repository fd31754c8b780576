import { describe, expect, it } from 'vitest'
import { callbackExpiry, callbackUrl, CALLBACK_GRACE_MS, verifyCallbackSignature } from '../../src/core/binding.ts'
import { newEncryptionKey, SecretBox } from '../../src/core/crypto.ts'
import { assertCallbackLive } from '../../src/http/callbacks.ts'

describe('run callback URLs are bounded (issue 12 item 10)', () => {
  it('sign the run id and the expiry; a changed or missing expiry does not verify', async () => {
    const box = await SecretBox.fromKey(newEncryptionKey())
    const url = new URL(await callbackUrl(box, 'https://relay.example/', 'run_a', 1_800_000_000_000))
    expect(url.pathname).toBe('/v1/callbacks/run_a')
    const exp = url.searchParams.get('exp')!
    const sig = url.searchParams.get('sig')!
    expect(exp).toBe('1800000000')
    expect(await verifyCallbackSignature(box, 'run_a', sig, exp)).toBe(true)
    expect(await verifyCallbackSignature(box, 'run_a', sig, '1800000001')).toBe(false)
    expect(await verifyCallbackSignature(box, 'run_a', sig, undefined)).toBe(false)
    expect(await verifyCallbackSignature(box, 'run_b', sig, exp)).toBe(false)
    // The old unbounded form (HMAC of the run id alone) is no longer accepted.
    expect(await verifyCallbackSignature(box, 'run_a', await box.sign('callback:run_a'), exp)).toBe(false)
  })

  it('expire after the run deadline plus a grace period, and are spent once the run has finished', () => {
    const created = 1_700_000_000_000
    expect(callbackExpiry({ deadlineAt: created + 60_000, createdAt: created })).toBe(created + 60_000 + CALLBACK_GRACE_MS)
    const exp = String(Math.ceil((created + 60_000) / 1000))
    expect(() => assertCallbackLive(exp, created + 30_000, { status: 'running', finishedAt: null })).not.toThrow()
    expect(() => assertCallbackLive(exp, created + 61_000, { status: 'running', finishedAt: null })).toThrow(/expired/)
    expect(() => assertCallbackLive(exp, created + 30_000, { status: 'completed', finishedAt: created + 20_000 })).toThrow(/already completed/)
  })
})
