/**
 * Run `fn` once the I/O of this turn of the event loop has been handled (setImmediate; a 0 ms
 * timer where there is none): work queued by every callback of the turn is then done together.
 */
export const afterIo: (fn: () => void) => void = typeof setImmediate === 'function' ? (fn) => { setImmediate(fn) } : (fn) => { setTimeout(fn, 0) }
