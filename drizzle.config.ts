import { defineConfig } from 'drizzle-kit'

export default defineConfig({
  dialect: 'turso',
  schema: './src/db/schema.ts',
  out: './migrations',
  dbCredentials: { url: process.env.LIBSQL_URL ?? 'file:./data/runrelay.db', authToken: process.env.LIBSQL_AUTH_TOKEN },
})
