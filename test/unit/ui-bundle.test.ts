import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { renderDashboardModule } from '../../scripts/build-ui.ts'

describe('bundled dashboard', () => {
  it('matches its sources in src/http/ui/dashboard/ (run `npm run build:ui` after a change)', async () => {
    expect(readFileSync('src/http/ui/dashboard.generated.ts', 'utf8')).toBe(await renderDashboardModule())
  }, 30_000)
})
