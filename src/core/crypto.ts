/**
 * Secrets, keys and ids through WebCrypto only, so the same code runs on Node, Deno and
 * Workers.
 */

import { encode as toBase64Url } from 'jose/base64url'

const encoder = new TextEncoder()
const decoder = new TextDecoder()

interface SyncDigest { update(data: string): SyncDigest; digest(encoding: 'hex' | 'base64url'): string }
/** The synchronous hashes of `node:crypto`, where the runtime has them (Node; others may). */
interface NodeHashes { createHash(algorithm: 'sha256'): SyncDigest; createHmac(algorithm: 'sha256', key: Uint8Array): SyncDigest }

/**
 * Node's `crypto.subtle` runs each digest or HMAC as an async job with heavy argument
 * validation (~0.1 ms of CPU each, on every request and tick); `node:crypto` computes the same
 * bytes synchronously in a few µs. Reached without an import so this module still loads on
 * runtimes without it (Workers, Deno), which keep WebCrypto.
 */
const nodeHashes: NodeHashes | undefined = (() => {
  try {
    const m = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process?.getBuiltinModule?.('node:crypto') as NodeHashes | undefined
    return typeof m?.createHash === 'function' && typeof m.createHmac === 'function' ? m : undefined
  } catch {
    return undefined
  }
})()

// Encoding is jose's (already the JWT library). Decoding stays here: it takes base64 and base64url
// alike (RUNRELAY_ENCRYPTION_KEY may be either), the same on every runtime, where jose's decoder is
// strict base64url and follows Uint8Array.fromBase64 where the runtime has it.
export { toBase64Url }

/** Bytes of base64url or base64 text, padding optional; throws on anything else. */
export function fromBase64Url(text: string): Uint8Array {
  const b64 = text.replace(/-/g, '+').replace(/_/g, '/')
  const bin = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4))
  const out = new Uint8Array(bin.length)
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i)
  return out
}

export function randomBytes(n: number): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(n))
}

/** A random id with a readable prefix, e.g. `run_3k9…`. 16 random bytes. */
export function newId(prefix: string): string {
  return `${prefix}_${toBase64Url(randomBytes(16)).replace(/[-_]/g, 'x')}`
}

/** SHA-256 hex of a string. API keys are high-entropy, so one hash round is enough. */
export async function sha256Hex(text: string): Promise<string> {
  if (nodeHashes) return nodeHashes.createHash('sha256').update(text).digest('hex')
  const digest = await crypto.subtle.digest('SHA-256', encoder.encode(text))
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('')
}

export const API_KEY_PREFIX = 'rr_'

/** A new API key: shown once, stored only as its hash and its first characters. */
export function newApiKey(): { key: string; prefix: string } {
  const key = API_KEY_PREFIX + toBase64Url(randomBytes(24))
  return { key, prefix: key.slice(0, 10) }
}

/** A new 32-byte AES key, base64url encoded (RUNRELAY_ENCRYPTION_KEY format). */
export function newEncryptionKey(): string {
  return toBase64Url(randomBytes(32))
}

/** AES-256-GCM encryption of JSON values at rest. Format: `v1.<iv>.<ciphertext>`. */
export class SecretBox {
  private constructor(
    private readonly key: CryptoKey, private readonly hmacKey: CryptoKey, private readonly hkdfKey: CryptoKey,
    /** The HMAC key's bytes, for node:crypto's synchronous HMAC (same signatures). */
    private readonly hmacRaw: Uint8Array,
  ) {}

  static async fromKey(base64Key: string): Promise<SecretBox> {
    let raw: Uint8Array
    try {
      raw = fromBase64Url(base64Key.trim())
    } catch {
      throw new Error('RUNRELAY_ENCRYPTION_KEY is not base64')
    }
    if (raw.length !== 32) throw new Error('RUNRELAY_ENCRYPTION_KEY must be 32 bytes (base64)')
    const key = await crypto.subtle.importKey('raw', raw as BufferSource, 'AES-GCM', false, ['encrypt', 'decrypt'])
    // A separate key for signing (callback URLs, subscriber tokens), derived so one secret suffices.
    const signRaw = new Uint8Array(await crypto.subtle.digest('SHA-256', concat(encoder.encode("runrelay-sign:"), raw) as BufferSource))
    const hmacKey = await crypto.subtle.importKey('raw', signRaw as BufferSource, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify'])
    const hkdfKey = await crypto.subtle.importKey('raw', raw as BufferSource, 'HKDF', false, ['deriveBits'])
    return new SecretBox(key, hmacKey, hkdfKey, signRaw)
  }

  /** 32 bytes for one `purpose` (HKDF-SHA256), so each use of the secret gets its own key. */
  async deriveKey(purpose: string): Promise<Uint8Array> {
    const bits = await crypto.subtle.deriveBits(
      { name: 'HKDF', hash: 'SHA-256', salt: encoder.encode('runrelay-hkdf-v1') as BufferSource, info: encoder.encode(purpose) as BufferSource },
      this.hkdfKey, 256,
    )
    return new Uint8Array(bits)
  }

  async encrypt(value: unknown): Promise<string> {
    const iv = randomBytes(12)
    const ct = await crypto.subtle.encrypt({ name: 'AES-GCM', iv: iv as BufferSource }, this.key, encoder.encode(JSON.stringify(value)) as BufferSource)
    return `v1.${toBase64Url(iv)}.${toBase64Url(new Uint8Array(ct))}`
  }

  async decrypt<T = unknown>(sealed: string): Promise<T> {
    const [version, iv, ct] = sealed.split('.')
    if (version !== 'v1' || !iv || !ct) throw new Error('unknown secret format')
    const pt = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: fromBase64Url(iv) as BufferSource }, this.key, fromBase64Url(ct) as BufferSource)
    return JSON.parse(decoder.decode(pt)) as T
  }

  /** HMAC-SHA256 of `message`, base64url. */
  async sign(message: string): Promise<string> {
    if (nodeHashes) return nodeHashes.createHmac('sha256', this.hmacRaw).update(message).digest('base64url')
    const sig = await crypto.subtle.sign('HMAC', this.hmacKey, encoder.encode(message))
    return toBase64Url(new Uint8Array(sig))
  }

  async verify(message: string, signature: string): Promise<boolean> {
    let sig: Uint8Array
    try { sig = fromBase64Url(signature) } catch { return false }
    return crypto.subtle.verify('HMAC', this.hmacKey, sig as BufferSource, encoder.encode(message))
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length)
  out.set(a)
  out.set(b, a.length)
  return out
}
