// Node (20, 22), Deno and Bun: `node backend.mjs`, `deno run -A backend.mjs`, `bun backend.mjs`.
import { check } from './check.mjs'

const runtime = globalThis.Deno ? `deno ${Deno.version.deno}` : globalThis.Bun ? `bun ${Bun.version}` : `node ${process.version}`
const env = globalThis.Deno ? Deno.env.toObject() : process.env
console.log(JSON.stringify(await check(env, runtime)))
