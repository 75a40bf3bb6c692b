import pg from 'pg'
import { inject } from 'vitest'
import { createDb, type Knex } from '../../src/db/knex.ts'
import { PG_SERVER_URL, databaseUrl, uniqueSuffix } from './env.ts'

export interface TestDatabase {
  name: string
  url: string
  db: Knex
  drop(): Promise<void>
}

async function admin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: `${PG_SERVER_URL}/postgres` })
  await client.connect()
  try {
    return await fn(client)
  } finally {
    await client.end()
  }
}

/** A database of the test file's own, cloned from the migrated template. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `goalpost_t_${uniqueSuffix()}`
  const template = inject('templateDatabase')
  await admin((c) => c.query(`CREATE DATABASE ${pg.escapeIdentifier(name)} TEMPLATE ${pg.escapeIdentifier(template)}`))
  const url = databaseUrl(name)
  const db = createDb(url, { poolMax: 8, applicationName: 'goalpost-test' })
  return {
    name,
    url,
    db,
    async drop() {
      await db.destroy()
      await admin((c) => c.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`))
    },
  }
}
