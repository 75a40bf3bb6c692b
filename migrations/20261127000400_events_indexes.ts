import type { Knex } from 'knex'

/**
 * Indexes on `events` that nothing reads cost every insert (they were about a
 * fifth of the index work on the hot path):
 *
 * - `seq` stays increasing (R2: an identity column), but its UNIQUE btree
 *   becomes a BRIN index: seq follows the physical order of an append-only
 *   log, so `WHERE seq > $last` (incremental exports) still scans only the
 *   new blocks, for a tiny index that costs almost nothing to maintain. A
 *   unique index on seq would also stop `events` from being distributed by
 *   person (Citus needs the distribution column in every unique index).
 * - `events_anonymous_id`: merges move rows by `person_id`, never by
 *   anonymous id.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw('ALTER TABLE events DROP CONSTRAINT IF EXISTS events_seq_key')
  await knex.raw('DROP INDEX IF EXISTS events_anonymous_id')
  await knex.raw('CREATE INDEX events_seq_brin ON events USING brin (seq)')
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP INDEX IF EXISTS events_seq_brin')
  await knex.raw('CREATE INDEX events_anonymous_id ON events (anonymous_id) WHERE anonymous_id IS NOT NULL')
  await knex.raw('ALTER TABLE events ADD CONSTRAINT events_seq_key UNIQUE (seq)')
}
