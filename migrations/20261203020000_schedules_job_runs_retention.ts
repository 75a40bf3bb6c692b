import type { Knex } from 'knex'

/**
 * Scheduled batch jobs, their history, and retention:
 * - `schedules`: the configuration document's `schedules` as saved (the
 *   workers keep BullMQ's job schedulers equal to it); small, a reference
 *   table on a distributed Postgres;
 * - `job_runs`: one row per recompute and retention run, whoever started it,
 *   for users to query (docs/sql-cookbook.md, "Job history");
 * - `retention_horizons`: per person whose old events a retention run
 *   deleted, where the log now starts (docs/operations.md, "Retention").
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('schedules', (t) => {
    t.text('name').primary()
    // { pattern, tz } | { everyMs }, and job: { kind: 'recompute', campaign?, dryRun } | { kind: 'retention', olderThanMs }
    t.jsonb('definition').notNullable()
    t.timestamp('created_at', { useTz: true }).notNullable()
    t.timestamp('updated_at', { useTz: true }).notNullable()
    t.integer('revision').notNullable().references('config_revisions.revision') // last changed in
  })

  await knex.raw(`
    CREATE TABLE job_runs (
      run_id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      kind                  text NOT NULL CHECK (kind IN ('recompute', 'retention')),
      scope                 text NOT NULL,
      dry_run               boolean NOT NULL DEFAULT false,
      trigger               text NOT NULL CHECK (trigger IN ('cli', 'api', 'schedule')),
      schedule              text,
      job_id                text,
      started_at            timestamptz NOT NULL,
      finished_at           timestamptz,
      people                integer,
      events_deleted        bigint,
      journeys_added        integer, journeys_changed    integer, journeys_removed    integer,
      conversions_added     integer, conversions_changed integer, conversions_removed integer,
      memberships_added     integer, memberships_changed integer, memberships_removed integer,
      deliveries_added      integer, deliveries_changed  integer, deliveries_removed  integer,
      error                 text
    )`)
  await knex.raw('CREATE INDEX job_runs_started_at ON job_runs (started_at DESC)')

  await knex.schema.createTable('retention_horizons', (t) => {
    t.text('person_id').primary()
    // Events of this person processed before this instant were deleted (identify and alias are kept).
    t.timestamp('horizon', { useTz: true }).notNullable()
    t.bigInteger('events_deleted').notNullable()
    t.timestamp('updated_at', { useTz: true }).notNullable()
  })
}

export async function down(knex: Knex): Promise<void> {
  for (const table of ['retention_horizons', 'job_runs', 'schedules']) await knex.schema.dropTableIfExists(table)
}
