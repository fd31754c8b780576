// An SSE parser over web streams only, so Node tests and tests inside workerd share it.

export interface SseEvent { id?: string; event?: string; data: string }

/** Read an event stream as EventSource would, pushing each event as it completes. Resolves at the end. */
export async function readSse(body: ReadableStream<Uint8Array>, events: SseEvent[]): Promise<void> {
  // The cast bridges the DOM and Workers typings of TextDecoderStream.
  const reader = body.pipeThrough(new TextDecoderStream() as unknown as TransformStream<Uint8Array, string>).getReader()
  let buf = ''
  try {
    for (;;) {
      const { value, done } = await reader.read()
      if (done) break
      buf += value
      let idx: number
      while ((idx = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, idx)
        buf = buf.slice(idx + 2)
        const ev: SseEvent = { data: '' }
        const data: string[] = []
        for (const line of block.split('\n')) {
          if (line.startsWith(':')) continue
          const [field, ...rest] = line.split(':')
          const v = rest.join(':').replace(/^ /, '')
          if (field === 'id') ev.id = v
          else if (field === 'event') ev.event = v
          else if (field === 'data') data.push(v)
        }
        if (data.length) { ev.data = data.join('\n'); events.push(ev) }
      }
    }
  } catch { /* aborted */ }
}
