import { conformanceSuite } from './suite.ts'
import { launchDeno } from './launch-deno.ts'

// The same suite as on Node, against a real Deno process.
conformanceSuite('deno', () => launchDeno())
