import { describe, expect, it } from 'vitest'
import { newEncryptionKey, SecretBox, sha256Hex, toBase64Url } from '../../src/core/crypto.ts'

// On Node, sha256Hex and SecretBox.sign use node:crypto's synchronous hashes: same bytes as WebCrypto.
describe('crypto fast paths', () => {
  const enc = new TextEncoder()
  const messages = ['callback:run_abc', '', 'ünïcödé ✓ 😀', 'x'.repeat(5000)]

  it('sha256Hex matches WebCrypto (and the known vector)', async () => {
    expect(await sha256Hex('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad')
    for (const m of messages) {
      const d = new Uint8Array(await crypto.subtle.digest('SHA-256', enc.encode(m)))
      expect(await sha256Hex(m)).toBe([...d].map((b) => b.toString(16).padStart(2, '0')).join(''))
    }
  })

  it('signatures are WebCrypto HMAC-SHA256, base64url without padding', async () => {
    const key = newEncryptionKey()
    const box = await SecretBox.fromKey(key)
    const raw = Uint8Array.from(atob(key.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (key.length % 4)) % 4)), (c) => c.charCodeAt(0))
    const prefix = enc.encode('runrelay-sign:')
    const signRaw = new Uint8Array(await crypto.subtle.digest('SHA-256', new Uint8Array([...prefix, ...raw])))
    const hmac = await crypto.subtle.importKey('raw', signRaw, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign'])
    for (const m of messages) {
      const sig = await box.sign(m)
      expect(sig).toBe(toBase64Url(new Uint8Array(await crypto.subtle.sign('HMAC', hmac, enc.encode(m)))))
      expect(await box.verify(m, sig)).toBe(true)
      expect(await box.verify(m + '!', sig)).toBe(false)
    }
  })
})
