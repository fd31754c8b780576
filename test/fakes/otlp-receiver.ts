import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'

/** A span as the OTLP/HTTP JSON export carries it, flattened with its resource's service name. */
export interface ReceivedSpan {
  traceId: string
  spanId: string
  parentSpanId?: string
  name: string
  kind: number
  attributes: Record<string, unknown>
  status?: { code?: number; message?: string }
  service: string
}

interface AnyValue { stringValue?: string; intValue?: string | number; doubleValue?: number; boolValue?: boolean }
const valueOf = (v: AnyValue) => v.stringValue ?? (v.intValue !== undefined ? Number(v.intValue) : v.doubleValue ?? v.boolValue)
const attrs = (list: Array<{ key: string; value: AnyValue }> | undefined) => Object.fromEntries((list ?? []).map((a) => [a.key, valueOf(a.value)]))

/**
 * A local OTLP/HTTP trace receiver on loopback: accepts POST /v1/traces (JSON encoding, what
 * @opentelemetry/exporter-trace-otlp-http sends), keeps every span and the raw bodies.
 */
export async function startOtlpReceiver() {
  const spans: ReceivedSpan[] = []
  const bodies: string[] = []
  const paths: string[] = []
  const server = createServer((req, res) => {
    let data = ''
    req.setEncoding('utf8')
    req.on('data', (c) => (data += c))
    req.on('end', () => {
      paths.push(`${req.method} ${req.url} ${req.headers['content-type']}`)
      bodies.push(data)
      try {
        const body = JSON.parse(data) as { resourceSpans?: any[] }
        for (const rs of body.resourceSpans ?? []) {
          const service = String(attrs(rs.resource?.attributes)['service.name'] ?? '')
          for (const ss of rs.scopeSpans ?? []) {
            for (const s of ss.spans ?? []) {
              spans.push({ traceId: s.traceId, spanId: s.spanId, parentSpanId: s.parentSpanId || undefined, name: s.name, kind: s.kind, attributes: attrs(s.attributes), status: s.status, service })
            }
          }
        }
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end('{}')
      } catch {
        res.writeHead(400)
        res.end()
      }
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    spans, bodies, paths,
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()) }),
  }
}
