/**
 * @runrelay/client: live workflow-run status for any UI or script. Framework-neutral, no
 * dependencies, nothing touches `window` at import (safe under server rendering).
 */
export * from './protocol.ts'
export * from './subscribe.ts'
export * from './snapshot.ts'
export * from './live.ts'
export * from './share.ts'
export * from './workflow.ts'
