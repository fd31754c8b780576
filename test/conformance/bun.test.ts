import { conformanceSuite } from './suite.ts'
import { launchBun } from './launch.ts'

// The same suite as on Node, against a real Bun process.
conformanceSuite('bun', () => launchBun())
