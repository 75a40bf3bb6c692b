import type { Knex } from 'knex'

/**
 * The configuration (CONTRACT.md, configuration document) as applied by
 * `goalpost apply` and `PUT /admin/config`: every applied document, the
 * segments and campaigns it declares (archived, never deleted, when a later
 * document leaves them out) and every goal version of every campaign (R13),
 * kept forever so a recompute (R3) judges each input by the version then in force.
 *
 * `definition` columns hold the normalised form of src/core/model.ts
 * (durations in ms), which is what the engine reads.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE TABLE config_revisions (
      revision   integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      document   jsonb NOT NULL,
      source     text NOT NULL,
      applied_at timestamptz NOT NULL,
      changes    jsonb NOT NULL DEFAULT '[]'
    )`)

  await knex.schema.createTable('segments', (t) => {
    t.text('key').primary()
    t.text('name').notNullable()
    t.jsonb('definition').notNullable() // { match, conditions }
    t.timestamp('archived_at', { useTz: true })
    t.timestamp('created_at', { useTz: true }).notNullable()
    t.timestamp('updated_at', { useTz: true }).notNullable()
    t.integer('revision').notNullable().references('config_revisions.revision') // last changed in
  })

  await knex.schema.createTable('campaigns', (t) => {
    t.text('key').primary()
    t.text('name').notNullable()
    // { externalIds, trigger?, filters?, exit, webhookConversions, journeyTtlMs }
    t.jsonb('definition').notNullable()
    t.timestamp('archived_at', { useTz: true })
    t.timestamp('created_at', { useTz: true }).notNullable()
    t.timestamp('updated_at', { useTz: true }).notNullable()
    t.integer('revision').notNullable().references('config_revisions.revision')
  })

  // R13: one row per goal change; goal null = the goal was removed from effective_from on.
  await knex.schema.createTable('campaign_goal_versions', (t) => {
    t.text('campaign_key').notNullable().references('campaigns.key')
    t.integer('version').notNullable()
    t.jsonb('goal')
    t.timestamp('effective_from', { useTz: true }).notNullable()
    t.timestamp('created_at', { useTz: true }).notNullable()
    t.integer('revision').notNullable().references('config_revisions.revision')
    t.primary(['campaign_key', 'version'])
  })
  await knex.raw('ALTER TABLE campaign_goal_versions ADD CONSTRAINT campaign_goal_versions_version_positive CHECK (version >= 1)')

  // The document's `delivery_events`: additions to the built-in table (R4).
  await knex.schema.createTable('config_delivery_events', (t) => {
    t.text('event').primary()
    t.text('channel').notNullable()
    t.text('step').notNullable()
    t.integer('revision').notNullable().references('config_revisions.revision')
  })
}

export async function down(knex: Knex): Promise<void> {
  for (const table of ['config_delivery_events', 'campaign_goal_versions', 'campaigns', 'segments', 'config_revisions'])
    await knex.schema.dropTableIfExists(table)
}
