import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { renderEmbeddedMigrations } from '../../scripts/embed-migrations.ts'

describe('embedded migrations', () => {
  it('match the drizzle-kit SQL in migrations/ (run `npm run db:generate` after a schema change)', () => {
    expect(readFileSync('src/db/migrations.generated.ts', 'utf8')).toBe(renderEmbeddedMigrations())
  })
})
