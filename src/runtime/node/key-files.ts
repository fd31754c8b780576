import { chmod, readFile, writeFile } from 'node:fs/promises'
import type { KeyFiles } from '../local/embedded.ts'

/** Key files through node:fs (Node, and Bun, which implements node:fs). */
export const nodeKeyFiles: KeyFiles = {
  async read(path) {
    try { return await readFile(path, 'utf8') } catch (err) { if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined; throw err }
  },
  async createExclusive(path, text) {
    try { await writeFile(path, text, { mode: 0o600, flag: 'wx' }) } catch (err) { if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false; throw err }
    await chmod(path, 0o600)
    return true
  },
}
