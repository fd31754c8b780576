import { conformanceSuite } from './suite.ts'
import { launchWorkers } from './launch-workers.ts'

// The same suite as on Node and Deno, against runrelay on workerd through `wrangler dev`.
conformanceSuite('workers', () => launchWorkers())
