import { defineConfig } from 'tsup'

/** The build every package shares: ESM, one .d.ts per entry, source maps, no runtime assumed. */
export const packageBuild = (entry: string[] = ['src/index.ts']) => defineConfig({
  entry,
  format: ['esm'],
  platform: 'neutral',
  target: 'es2022',
  dts: true,
  sourcemap: true,
  clean: true,
})
