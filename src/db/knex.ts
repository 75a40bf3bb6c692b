import knexFactory, { type Knex } from 'knex'
import pg from 'pg'
import type { DependencyHealth } from '../dependency-health.ts'

export type { Knex }

// Postgres bigint (int8) and numeric stay strings by default; seq values fit
// in a double for the lifetime of any deployment, so read them as numbers.
pg.types.setTypeParser(pg.types.builtins.INT8, (value) => Number(value))

export interface DbOptions {
  /** Pool size; each ingest job in flight holds one connection. */
  poolMax?: number
  applicationName?: string
  /** Routes knex's connection warnings into the outage log, and marks Postgres back once a connection opens. */
  health?: DependencyHealth
}

export function createDb(databaseUrl: string, opts: DbOptions = {}): Knex {
  return knexFactory({
    client: 'pg',
    connection: { connectionString: databaseUrl, application_name: opts.applicationName ?? 'goalpost' },
    pool: {
      min: 0,
      max: opts.poolMax ?? 10,
      ...(opts.health && {
        afterCreate: (_conn: unknown, done: (err: Error | null, conn: unknown) => void) => {
          opts.health!.up('postgres')
          done(null, _conn)
        },
      }),
    },
    acquireConnectionTimeout: 10_000,
    ...(opts.health && { log: opts.health.knexLogger() }),
  })
}

/** Creates the database named in the URL when it does not exist yet. */
export async function ensureDatabase(databaseUrl: string): Promise<boolean> {
  const url = new URL(databaseUrl)
  const name = decodeURIComponent(url.pathname.replace(/^\//, ''))
  if (!name) throw new Error(`DATABASE_URL names no database: ${databaseUrl}`)
  const probe = new pg.Client({ connectionString: databaseUrl })
  try {
    await probe.connect()
    return false
  } catch (err) {
    if ((err as { code?: string }).code !== '3D000') throw err // 3D000: invalid_catalog_name
  } finally {
    await probe.end().catch(() => {})
  }
  // Connect to the server's maintenance database to issue CREATE DATABASE.
  url.pathname = '/postgres'
  const admin = new pg.Client({ connectionString: url.toString() })
  await admin.connect()
  try {
    await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`)
  } catch (err) {
    if ((err as { code?: string }).code !== '42P04') throw err // created meanwhile by another process
  } finally {
    await admin.end()
  }
  return true
}
