import type { Readable } from 'node:stream'

/**
 * An answer of Node's transport (pinned-transport.ts) as a `Response`, its body kept as the
 * Node stream it came in until somebody asks for a web stream. Reading it whole (`text()`,
 * `json()`, `arrayBuffer()`, as the connectors' bounded read does when a Content-Length bounds
 * it) takes the bytes straight from the socket's stream: the `ReadableStream`, its controller
 * and the `Response` around it were an eighth of what a poll allocated (issue 26).
 *
 * `body`, `clone()` and `formData()` behave as a standard Response's; `bodyUsed` is true once
 * the body has been read whole or its stream locked.
 */
export class UpstreamAnswer implements Response {
  readonly type: ResponseType = 'basic'
  readonly redirected: boolean = false
  readonly statusText: string = ''
  #source: Readable | null
  #stream: ReadableStream<Uint8Array<ArrayBuffer>> | null | undefined
  #read = false

  constructor(readonly url: string, readonly status: number, readonly headers: Headers, body: Readable | null) {
    this.#source = body
  }

  get ok(): boolean { return this.status >= 200 && this.status < 300 }

  get body(): ReadableStream<Uint8Array<ArrayBuffer>> | null {
    if (this.#stream === undefined) this.#stream = this.#source && !this.#read ? webStream(this.#source) : null
    return this.#stream
  }

  get bodyUsed(): boolean { return this.#read || (this.#stream?.locked ?? false) }

  async bytes(): Promise<Uint8Array<ArrayBuffer>> {
    if (this.bodyUsed) throw new TypeError('Body is unusable: Body has already been read')
    if (this.#stream) return new Uint8Array(await new Response(this.#stream).arrayBuffer())
    this.#read = true
    return this.#source ? await collect(this.#source) : new Uint8Array(0)
  }

  async arrayBuffer(): Promise<ArrayBuffer> {
    const bytes = await this.bytes()
    return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes.buffer : bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)
  }

  async text(): Promise<string> { return UTF8.decode(await this.bytes()) }
  async json(): Promise<unknown> { return JSON.parse(await this.text()) }
  async blob(): Promise<Blob> { return new Blob([await this.bytes()], { type: this.headers.get('content-type') ?? '' }) }
  async formData(): Promise<FormData> { return await this.#standard(this.body).formData() }

  clone(): Response {
    if (this.bodyUsed) throw new TypeError('Response.clone: Body has already been consumed')
    const body = this.body
    if (!body) return this.#standard(null)
    const [mine, theirs] = body.tee()
    this.#stream = mine
    return this.#standard(theirs)
  }

  #standard(body: ReadableStream<Uint8Array<ArrayBuffer>> | null): Response {
    return new Response(body, { status: this.status, statusText: this.statusText, headers: this.headers })
  }
}

/** One decoder for every answer: `decode` without `stream` keeps no state between calls. */
const UTF8 = new TextDecoder()

/** The whole of a Node stream; rejects if it fails or closes before its end. */
function collect(source: Readable): Promise<Uint8Array<ArrayBuffer>> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let total = 0
    let ended = false
    source.on('data', (chunk: Buffer) => { chunks.push(chunk); total += chunk.byteLength })
    source.once('end', () => {
      ended = true
      const bytes = new Uint8Array(total)
      let at = 0
      for (const c of chunks) { bytes.set(c, at); at += c.byteLength }
      resolve(bytes)
    })
    source.once('error', reject)
    // Only then an error: one built (with its stack) on every close was 5% of a poll's CPU.
    source.once('close', () => { if (!ended) reject(new TypeError('the upstream body ended before it was complete')) })
  })
}

/**
 * A Node stream as a web stream, paused while the reader is behind. Not `Readable.toWeb`: its
 * adapter enqueues a chunk still in flight after the reader cancels, and that throws where
 * nothing catches it (ERR_INVALID_STATE, an uncaught exception: upstream-bounds.test.ts).
 */
function webStream(body: Readable): ReadableStream<Uint8Array<ArrayBuffer>> {
  let settled = false
  const settle = (end: () => void) => { if (!settled) { settled = true; end() } }
  return new ReadableStream<Uint8Array<ArrayBuffer>>({
    start(controller) {
      body.on('data', (chunk: Buffer) => {
        if (settled) return
        controller.enqueue(new Uint8Array(chunk.buffer as ArrayBuffer, chunk.byteOffset, chunk.byteLength))
        if ((controller.desiredSize ?? 0) <= 0) body.pause()
      })
      body.once('end', () => settle(() => controller.close()))
      body.once('error', (err) => settle(() => controller.error(err)))
      body.once('close', () => settle(() => controller.error(new Error('the upstream body ended before it was complete'))))
    },
    pull() { body.resume() },
    cancel() { settled = true; body.destroy() },
  })
}

