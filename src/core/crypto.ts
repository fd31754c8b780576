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

/** One key's material: AES-GCM, the HMAC key derived from it, HKDF, and its fingerprint. */
interface KeyMaterial { aes: CryptoKey; hmac: CryptoKey; hmacRaw: Uint8Array; hkdf: CryptoKey; fingerprint: string }

/**
 * AES-256-GCM encryption of JSON values at rest. Format: `v1.<iv>.<ciphertext>`. Several keys
 * (RUNRELAY_ENCRYPTION_KEY="new,old", for rotation): the first encrypts, signs and derives;
 * every one decrypts and verifies.
 */
export class SecretBox {
  private constructor(private readonly keys: KeyMaterial[]) {}

  /** A box over RUNRELAY_ENCRYPTION_KEY: one key, or several separated by commas (the first is current). */
  static async fromKey(base64Keys: string): Promise<SecretBox> {
    const texts = base64Keys.split(/[\s,]+/).filter(Boolean)
    if (texts.length === 0) throw new Error('RUNRELAY_ENCRYPTION_KEY is empty')
    return new SecretBox(await Promise.all(texts.map((t, i) => keyMaterial(t, texts.length > 1 ? ` (key ${i + 1} of ${texts.length})` : ''))))
  }

  /**
   * A fingerprint per key, current first: 16 hex digits of an HMAC of a fixed label under the
   * key, stored in the database at the first start to catch a process started with another key
   * (it says nothing of the key itself).
   */
  get fingerprints(): string[] { return this.keys.map((k) => k.fingerprint) }

  private get current(): KeyMaterial { return this.keys[0]! }

  /** 32 bytes for one `purpose` (HKDF-SHA256 of the current key), so each use of the secret gets its own key. */
  async deriveKey(purpose: string): Promise<Uint8Array> {
    const bits = await crypto.subtle.deriveBits(
      { name: 'HKDF', hash: 'SHA-256', salt: encoder.encode('runrelay-hkdf-v1') as BufferSource, info: encoder.encode(purpose) as BufferSource },
      this.current.hkdf, 256,
    )
    return new Uint8Array(bits)
  }

  async encrypt(value: unknown): Promise<string> {
    const iv = randomBytes(12)
    const ct = await crypto.subtle.encrypt({ name: 'AES-GCM', iv: iv as BufferSource }, this.current.aes, encoder.encode(JSON.stringify(value)) as BufferSource)
    return `v1.${toBase64Url(iv)}.${toBase64Url(new Uint8Array(ct))}`
  }

  async decrypt<T = unknown>(sealed: string): Promise<T> {
    return (await this.open<T>(sealed)).value
  }

  /** Decrypt with whichever key opens it (GCM authenticates: a wrong key fails); `current` says whether that is the first. */
  async open<T = unknown>(sealed: string): Promise<{ value: T; current: boolean }> {
    const [version, iv, ct] = sealed.split('.')
    if (version !== 'v1' || !iv || !ct) throw new Error('unknown secret format')
    for (const [i, k] of this.keys.entries()) {
      try {
        const pt = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: fromBase64Url(iv) as BufferSource }, k.aes, fromBase64Url(ct) as BufferSource)
        return { value: JSON.parse(decoder.decode(pt)) as T, current: i === 0 }
      } catch { /* the next key */ }
    }
    throw new Error('none of the keys in RUNRELAY_ENCRYPTION_KEY decrypts this secret: it was sealed with another key')
  }

  /** HMAC-SHA256 of `message` under the current key, base64url. */
  async sign(message: string): Promise<string> {
    if (nodeHashes) return nodeHashes.createHmac('sha256', this.current.hmacRaw).update(message).digest('base64url')
    const sig = await crypto.subtle.sign('HMAC', this.current.hmac, encoder.encode(message))
    return toBase64Url(new Uint8Array(sig))
  }

  /** Whether `signature` is `message`'s HMAC under any of the keys (URLs signed before a rotation stay valid). */
  async verify(message: string, signature: string): Promise<boolean> {
    let sig: Uint8Array
    try { sig = fromBase64Url(signature) } catch { return false }
    for (const k of this.keys) if (await crypto.subtle.verify('HMAC', k.hmac, sig as BufferSource, encoder.encode(message))) return true
    return false
  }
}

async function keyMaterial(base64Key: string, which: string): Promise<KeyMaterial> {
  let raw: Uint8Array
  try {
    raw = fromBase64Url(base64Key.trim())
  } catch {
    throw new Error(`RUNRELAY_ENCRYPTION_KEY is not base64${which}`)
  }
  if (raw.length !== 32) throw new Error(`RUNRELAY_ENCRYPTION_KEY must be 32 bytes (base64)${which}`)
  const aes = await crypto.subtle.importKey('raw', raw as BufferSource, 'AES-GCM', false, ['encrypt', 'decrypt'])
  // A separate key for signing (callback URLs, subscriber tokens), derived so one secret suffices.
  const hmacRaw = new Uint8Array(await crypto.subtle.digest('SHA-256', concat(encoder.encode("runrelay-sign:"), raw) as BufferSource))
  const hmac = await crypto.subtle.importKey('raw', hmacRaw as BufferSource, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify'])
  const hkdf = await crypto.subtle.importKey('raw', raw as BufferSource, 'HKDF', false, ['deriveBits'])
  const fpKey = await crypto.subtle.importKey('raw', raw as BufferSource, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign'])
  const fp = new Uint8Array(await crypto.subtle.sign('HMAC', fpKey, encoder.encode('runrelay-key-fingerprint-v1')))
  const fingerprint = [...fp.slice(0, 8)].map((b) => b.toString(16).padStart(2, '0')).join('')
  return { aes, hmac, hmacRaw, hkdf, fingerprint }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length)
  out.set(a)
  out.set(b, a.length)
  return out
}
