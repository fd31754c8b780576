/**
 * The client SDK lives in packages/client (published as `@runrelay/client`); the server's own
 * users (CLI, tests) import its source through this path so they need no build step.
 */
export * from '../../packages/client/src/index.ts'
