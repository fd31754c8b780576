#!/usr/bin/env node
// The runrelay CLI: runs src/cli/main.ts through tsx (a dependency), so there is no build step.
import { tsImport } from 'tsx/esm/api'

const { main } = await tsImport('../src/cli/main.ts', import.meta.url)
process.exitCode = await main(process.argv.slice(2))
