import type { Knex } from 'knex'

/** The tables whose reads the hot paths plan by statistics. */
export const ANALYZED_TABLES = [
  'events',
  'people',
  'identity_links',
  'deliveries',
  'journeys',
  'conversions',
  'segment_memberships',
  'person_evaluations',
] as const

/**
 * Analyzes the tables that have changed by at least `minChanges` rows and were
 * never analyzed. A new database has no planner statistics until
 * autovacuum's first round (up to `autovacuum_naptime`, a minute by default,
 * or never if autovacuum is off), and without them Postgres reads people's
 * logs with sequential scans of `events`: on a fresh installation, or during
 * the first minutes of a large import, every batch then costs time in
 * proportion to the whole table. Once a table has statistics, autovacuum
 * keeps them current (after 10 % of it changes). Returns the tables analyzed.
 */
export async function analyzeNewTables(db: Knex, minChanges = 1_000): Promise<string[]> {
  const { rows } = await db.raw<{ rows: { relname: string }[] }>(
    `SELECT relname FROM pg_stat_user_tables
      WHERE schemaname = current_schema() AND relname = ANY(?::text[])
        AND last_analyze IS NULL AND last_autoanalyze IS NULL AND n_mod_since_analyze >= ?
      ORDER BY relname`,
    [[...ANALYZED_TABLES], minChanges],
  )
  for (const { relname } of rows) await db.raw('ANALYZE ??', [relname])
  return rows.map((r) => r.relname)
}
