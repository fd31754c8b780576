import { conformanceSuite } from './suite.ts'
import { launchDeno } from './launch.ts'

// The same suite as on Node, against a real Deno process.
conformanceSuite('deno', () => launchDeno())
