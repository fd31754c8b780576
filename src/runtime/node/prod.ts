// Entry of the compiled build (dist/main.mjs): a few lines that turn on V8's compile cache
// before the server's code is loaded, so a restart reuses the code compiled by the last start
// instead of parsing and compiling it again (Node >= 22.1; a no-op on Node 20). The cache lives in
// $NODE_COMPILE_CACHE or the OS temp dir; NODE_DISABLE_COMPILE_CACHE=1 turns it off.
import module from 'node:module'

const compileCache = module as { enableCompileCache?: () => unknown; flushCompileCache?: () => void }
compileCache.enableCompileCache?.()
const { runMain } = await import('./main.ts')
await runMain()
// Node writes the cache at a clean exit only; written now, it also serves the start after a
// crash or a SIGKILL (Node >= 22.10).
compileCache.flushCompileCache?.()
