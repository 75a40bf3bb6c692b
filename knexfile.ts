// For the knex CLI (`npx knex --knexfile knexfile.ts migrate:status`);
// goalpost itself migrates with `goalpost migrate`, which uses the same source.
import type { Knex } from 'knex'
import { migrationSource } from './src/db/migrate.ts'

const config: Knex.Config = {
  client: 'pg',
  connection: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/goalpost',
  migrations: { migrationSource },
}

export default config
