import type { ContentfulStatusCode } from 'hono/utils/http-status'

/**
 * An error a caller made, with the status and code it is answered with: thrown by services
 * (a trigger, a schedule) and routes alike; src/http/errors.ts turns it into the one error body.
 */
export class ApiError extends Error {
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: string,
    message: string,
    readonly details: unknown[] = [],
    readonly headers: Record<string, string> = {},
  ) {
    super(message)
  }
}

/** A 409: the object's state does not allow this now. */
export const conflict = (code: string, message: string) => new ApiError(409, code, message)
