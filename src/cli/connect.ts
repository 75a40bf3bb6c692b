import pg from 'pg'
import { createDb, type Knex } from '../db/knex.ts'
import { withTimeout } from '../timeout.ts'
import { CommandError, redactUrl } from './user-errors.ts'

/**
 * A one-shot command's database, opened only once a plain connection has
 * answered within `timeoutMs`: an unreachable or missing database is one
 * clear error, not a hang nor the pool's own retry noise on stderr.
 */
export async function openDb(databaseUrl: string, name: string, timeoutMs = 3_000): Promise<Knex> {
  // pg's own timeout, a little later, closes the socket; ours names the cause.
  const probe = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: timeoutMs + 500 })
  try {
    await withTimeout(probe.connect(), timeoutMs, `Postgres did not answer within ${timeoutMs} ms`)
  } catch (err) {
    const code = (err as { code?: unknown }).code
    if (code === '3D000') throw new CommandError(`database "${new URL(databaseUrl).pathname.slice(1)}" does not exist; run "goalpost migrate" to create it`)
    const message = err instanceof AggregateError && err.errors.length > 0 ? String(err.errors[0].message) : (err as Error).message
    throw new CommandError(`cannot reach Postgres at ${redactUrl(databaseUrl)}: ${message.split('\n')[0]}. Check DATABASE_URL and that Postgres is running.`, { cause: err })
  } finally {
    await probe.end().catch(() => {})
  }
  return createDb(databaseUrl, { poolMax: 2, applicationName: `goalpost-${name}` })
}

/** Throws a CommandError saying to migrate when the error is a missing table or column. */
export function migrationHint(err: unknown, databaseUrl: string): unknown {
  const code = (err as { code?: unknown }).code
  return code === '42P01' || code === '42703'
    ? new CommandError(`the database ${redactUrl(databaseUrl)} is not migrated to this goalpost's schema; run "goalpost migrate" first`)
    : err
}
