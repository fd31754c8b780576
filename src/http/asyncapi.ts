import * as z from 'zod'
import { RunEvent } from '../core/domain.ts'
import { ClientMessage, CLOSE, PROTOCOL_VERSION, ServerMessage, SUBPROTOCOL } from '../core/protocol.ts'
import { keySecuritySchemes, pascal, SchemaComponents, type Json } from './api-documents.ts'
import { FeedQuery, StreamQuery } from './schemas.ts'

/**
 * The WebSocket and SSE protocol as an AsyncAPI 3 document (`/asyncapi.json`), generated from
 * the zod protocol schemas (src/core/protocol.ts): a message type added to `ServerMessage` or
 * `ClientMessage` appears here by itself. The document describes the runrelay server, so what
 * it sends to subscribers is `send` and what it reads from them is `receive`.
 */

/** The message `type` literal of one option of a discriminated union. */
function typeOf(option: z.ZodType): string {
  const type = option instanceof z.ZodObject ? option.shape.type : undefined
  if (!(type instanceof z.ZodLiteral) || typeof type.value !== 'string') throw new Error('every protocol message has a string literal `type`')
  return type.value
}

const closeCodes = Object.entries(CLOSE).map(([name, code]) => `${code} ${name.toLowerCase().replace(/_/g, ' ')}`).join(', ')

/** The AsyncAPI 3 document of runrelay's streams, for a server at `publicUrl`. */
export function buildAsyncApi(opts: { title: string; version: string; publicUrl: string }): Record<string, unknown> {
  const url = new URL(opts.publicUrl)
  const secure = url.protocol === 'https:'
  const components = new SchemaComponents('draft-7')
  const messages: Record<string, Json> = {}

  /** One message per option of a union, named after its `type`; returns their names. */
  const addUnion = (union: { options: readonly z.ZodType[] }, direction: string): string[] => union.options.map((option) => {
    const type = typeOf(option)
    const schemaName = `${pascal(type)}Message`
    components.schemas[schemaName] ??= components.add(option, 'output')
    const description = (option as z.ZodType).description
    messages[type] = {
      name: type,
      title: `${type} (${direction})`,
      ...(description ? { summary: description } : {}),
      contentType: 'application/json',
      payload: { $ref: `#/components/schemas/${schemaName}` },
    }
    return type
  })
  const serverMessages = addUnion(ServerMessage, 'server → client')
  const clientMessages = addUnion(ClientMessage, 'client → server')

  components.schemas.RunEvent ??= components.add(RunEvent, 'output')
  messages.sseEvent = {
    name: 'sseEvent',
    title: 'SSE event',
    summary: 'One run event: the SSE `id` is its position (a run\'s seq, or the feed\'s event id), the SSE `event` its type, `data` the event as JSON.',
    contentType: 'application/json',
    payload: { $ref: '#/components/schemas/RunEvent' },
  }
  messages.sseError = {
    name: 'sseError',
    title: 'SSE error',
    summary: 'Sent as SSE `event: error` before the server closes a slow consumer; reconnect with Last-Event-ID.',
    contentType: 'application/json',
    payload: { type: 'object', properties: { code: { type: 'string' }, message: { type: 'string' } }, required: ['code', 'message'] },
  }

  const runId = { runId: { description: 'The run\'s id.' } }
  const refs = (names: string[]) => Object.fromEntries(names.map((n) => [n, { $ref: `#/components/messages/${n}` }]))
  const wsBinding = (query: z.ZodType) => ({ ws: { bindingVersion: '0.1.0', method: 'GET', query: components.add(query, 'input') } })
  const wsText = `Open with \`Sec-WebSocket-Protocol: ${SUBPROTOCOL}\` (protocol ${PROTOCOL_VERSION}); a browser may add \`runrelay.token.<subscriber token>\` instead of a key. Every frame is JSON with a \`type\`. Resume with \`after\`: you get exactly the events after it, then live ones, each once and in order. Close codes: ${closeCodes}; reconnect (resuming) on all but the 40xx refusals.`
  const sseText = 'Server-Sent Events (`Accept: text/event-stream`): `retry: 1000`, then one SSE event per run event, and comment lines as heartbeats. Resume with `Last-Event-ID` (or `after`).'

  const channels: Record<string, Json> = {
    runStream: {
      address: '/v1/runs/{runId}/stream', title: 'Run stream (WebSocket)', parameters: runId, servers: [{ $ref: '#/servers/websocket' }],
      description: `Every event of one run: the missed ones after \`after\` (a seq), then live ones; closes with 1000 after the run's terminal event. ${wsText}`,
      messages: refs([...serverMessages, ...clientMessages]), bindings: wsBinding(StreamQuery),
    },
    feed: {
      address: '/v1/stream', title: 'Tenant feed (WebSocket)', servers: [{ $ref: '#/servers/websocket' }],
      description: `Every event of the tenant, filtered by workflow, status and tags (comma-separated lists); \`after\` is an event id, and without it the feed starts at the live end. ${wsText}`,
      messages: refs([...serverMessages, ...clientMessages]), bindings: wsBinding(FeedQuery),
    },
    runStreamSse: {
      address: '/v1/runs/{runId}/stream', title: 'Run stream (SSE)', parameters: runId, servers: [{ $ref: '#/servers/sse' }],
      description: `The run stream over SSE; SSE ids are seqs. ${sseText}`, messages: refs(['sseEvent', 'sseError']),
    },
    runEventsSse: {
      address: '/v1/runs/{runId}/events', title: 'Run history, live (SSE)', parameters: runId, servers: [{ $ref: '#/servers/sse' }],
      description: `\`GET /v1/runs/{id}/events\` with \`Accept: text/event-stream\`: the history, then live. ${sseText}`, messages: refs(['sseEvent', 'sseError']),
    },
    feedSse: {
      address: '/v1/stream', title: 'Tenant feed (SSE)', servers: [{ $ref: '#/servers/sse' }],
      description: `The tenant feed over SSE; SSE ids are event ids. ${sseText}`, messages: refs(['sseEvent', 'sseError']),
    },
  }

  const operations: Record<string, Json> = {}
  const operation = (channel: string, action: 'send' | 'receive', names: string[], summary: string) => {
    operations[`${action}${pascal(channel)}`] = {
      action, summary, channel: { $ref: `#/channels/${channel}` },
      messages: names.map((n) => ({ $ref: `#/channels/${channel}/messages/${n}` })),
    }
  }
  for (const channel of ['runStream', 'feed']) {
    operation(channel, 'send', serverMessages, 'What the server sends: hello, events, caught_up, heartbeats, errors.')
    operation(channel, 'receive', clientMessages, 'What the server reads from a subscriber: ping, token refresh.')
  }
  for (const channel of ['runStreamSse', 'runEventsSse', 'feedSse']) operation(channel, 'send', ['sseEvent', 'sseError'], 'Run events as Server-Sent Events.')

  const security = [{ $ref: '#/components/securitySchemes/bearer' }, { $ref: '#/components/securitySchemes/apiKey' }, { $ref: '#/components/securitySchemes/token' }]
  return {
    asyncapi: '3.1.0',
    info: {
      title: `${opts.title} streams`,
      version: opts.version,
      description: 'Live run events over WebSocket and Server-Sent Events. The HTTP API is described by `/openapi.json`.',
      contact: { name: opts.title, url: `${url.origin}/docs` },
      license: { name: 'Proprietary' },
    },
    defaultContentType: 'application/json',
    servers: {
      websocket: { host: url.host, protocol: secure ? 'wss' : 'ws', description: 'WebSocket streams', security },
      sse: { host: url.host, protocol: secure ? 'https' : 'http', description: 'Server-Sent Events streams', security },
    },
    channels,
    operations,
    components: {
      schemas: components.schemas,
      messages,
      securitySchemes: {
        ...keySecuritySchemes('httpApiKey'),
        token: { type: 'httpApiKey', in: 'query', name: 'token', description: 'A subscriber token (browsers), also accepted as the subprotocol `runrelay.token.<token>`.' },
      },
    },
  }
}
