// Preloaded with --import in a child process: writes every module URL the process resolved to
// $IMPORTS_OUT when it exits (Node 22.15+ synchronous module hooks).
import { writeFileSync } from 'node:fs'
import { registerHooks } from 'node:module'

const seen = new Set()
registerHooks({
  resolve(specifier, context, next) {
    const result = next(specifier, context)
    seen.add(result.url)
    return result
  },
})
process.on('exit', () => writeFileSync(process.env.IMPORTS_OUT, [...seen].join('\n')))
