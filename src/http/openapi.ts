import { z } from 'zod'
import { ErrorBody } from './errors.ts'

/** A route as documented: the same zod schemas that validate it produce its OpenAPI entry. */
export interface RouteDoc {
  method: 'get' | 'post' | 'patch' | 'delete' | 'put'
  /** Hono path (`/v1/runs/:id`). */
  path: string
  summary: string
  tag: string
  scope?: string
  auth?: 'key' | 'root' | 'none' | 'signature'
  params?: z.ZodType
  query?: z.ZodType
  body?: z.ZodType
  response?: z.ZodType
  status?: number
  /** Extra content types the route answers (SSE, WebSocket upgrade). */
  streams?: boolean
}

export const routeDocs: RouteDoc[] = []

export function documented(doc: RouteDoc): RouteDoc {
  routeDocs.push(doc)
  return doc
}

const schema = (s: z.ZodType, io: 'input' | 'output') => z.toJSONSchema(s, { io, unrepresentable: 'any', target: 'openapi-3.0' }) as Record<string, unknown>

/** The OpenAPI 3.0 document of every documented route. */
export function buildOpenApi(opts: { title: string; version: string; serverUrl?: string }): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {}
  for (const r of routeDocs) {
    const path = r.path.replace(/:(\w+)/g, '{$1}')
    const parameters: unknown[] = []
    const addParams = (s: z.ZodType | undefined, where: 'path' | 'query') => {
      if (!s) return
      const json = schema(s, 'input') as { properties?: Record<string, unknown>; required?: string[] }
      for (const [name, sch] of Object.entries(json.properties ?? {})) {
        parameters.push({ name, in: where, required: where === 'path' || (json.required ?? []).includes(name), schema: sch })
      }
    }
    addParams(r.params, 'path')
    addParams(r.query, 'query')
    const op: Record<string, unknown> = {
      summary: r.summary,
      tags: [r.tag],
      parameters,
      responses: {
        [String(r.status ?? 200)]: {
          description: 'success',
          content: {
            'application/json': { schema: r.response ? schema(r.response, 'output') : {} },
            ...(r.streams ? { 'text/event-stream': { schema: { type: 'string' } } } : {}),
          },
        },
        // A stream resumed at the end of a finished run (SSE): nothing to send, and EventSource stops.
        ...(r.streams && r.path.startsWith('/v1/runs/') ? { 204: { description: 'SSE: Last-Event-ID (or after) is the last seq of a finished run' } } : {}),
        default: { description: 'error', content: { 'application/json': { schema: schema(ErrorBody, 'output') } } },
      },
    }
    if (r.scope) op.description = `Requires scope \`${r.scope}\`.`
    if (r.auth === 'none' || r.auth === 'signature') op.security = []
    if (r.auth === 'root') op.description = 'Requires the root key.'
    // Machine-readable: what a caller needs (a scope, the root key, a signature or nothing).
    op['x-runrelay-scope'] = r.auth === 'root' ? 'root' : r.auth === 'none' ? 'none' : r.auth === 'signature' ? 'signature' : r.scope ?? null
    if (r.body) op.requestBody = { required: true, content: { 'application/json': { schema: schema(r.body, 'input') } } }
    ;(paths[path] ??= {})[r.method] = op
  }
  return {
    openapi: '3.0.3',
    info: { title: opts.title, version: opts.version, description: 'runrelay: trigger upstream workflow runs, watch them, and stream every change.' },
    servers: opts.serverUrl ? [{ url: opts.serverUrl }] : [],
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer' },
        apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' },
      },
    },
    security: [{ bearer: [] }, { apiKey: [] }],
    paths,
  }
}
