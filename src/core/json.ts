/**
 * JSON from outside (API bodies, callbacks, WebSocket messages) is refused past this nesting:
 * deeper values overflow the stack of the recursive code that handles them later
 * (JSON.stringify, zod, template rendering). No legitimate input comes near it.
 */
export const MAX_JSON_DEPTH = 64

/** Thrown by parseJson for text nested deeper than the limit. */
export class JsonTooDeepError extends Error {
  constructor(readonly limit: number) {
    super(`JSON is nested deeper than ${limit} levels`)
  }
}

/**
 * Whether JSON text nests arrays and objects deeper than `limit`: one pass over the text,
 * no recursion, brackets inside strings ignored. Malformed text is left to JSON.parse.
 */
export function jsonTooDeep(text: string, limit = MAX_JSON_DEPTH): boolean {
  let depth = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i)
    if (inString) {
      if (ch === 0x5c) i++ // backslash: skip the escaped character
      else if (ch === 0x22) inString = false
    } else if (ch === 0x22) inString = true
    else if (ch === 0x5b || ch === 0x7b) { if (++depth > limit) return true }
    else if (ch === 0x5d || ch === 0x7d) depth--
  }
  return false
}

/** JSON.parse that throws JsonTooDeepError for text nested deeper than `limit` (SyntaxError for malformed text). */
export function parseJson(text: string, limit = MAX_JSON_DEPTH): unknown {
  if (jsonTooDeep(text, limit)) throw new JsonTooDeepError(limit)
  return JSON.parse(text)
}
