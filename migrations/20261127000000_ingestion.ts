import type { Knex } from 'knex'

/**
 * The ingestion tables: the append-only event log, people, identity links,
 * deliveries and messages the worker could never store.
 *
 * Every table but the log is keyed or indexed by person, the column a
 * distributed Postgres (Citus) would shard on.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('people', (t) => {
    t.text('person_id').primary()
    t.jsonb('attributes').notNullable().defaultTo('{}')
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now())
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now())
    // The (received_at, seq) of the last identify folded into attributes, so a
    // late identify (R3) is recognised and the fold is redone from the log.
    t.timestamp('traits_received_at', { useTz: true })
    t.bigInteger('traits_seq')
  })

  // R2: seq is the persist order; an identity column gives an increasing sequence.
  await knex.raw(`
    CREATE TABLE events (
      message_id     text PRIMARY KEY,
      seq            bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
      person_id      text NOT NULL,
      user_id        text,
      anonymous_id   text,
      type           text NOT NULL,
      name           text,
      properties     jsonb NOT NULL DEFAULT '{}',
      meta           jsonb,
      context        jsonb,
      received_at    timestamptz NOT NULL,
      sent_timestamp timestamptz,
      source         text NOT NULL,
      ingested_at    timestamptz NOT NULL DEFAULT now()
    )`)
  // Per-person history in rule order (R2): the engine's main read.
  await knex.raw('CREATE INDEX events_person_time ON events (person_id, received_at, seq)')
  // Time-range scans over an append-mostly log: BRIN is tiny and cheap to maintain.
  await knex.raw('CREATE INDEX events_received_at_brin ON events USING brin (received_at)')
  // Re-resolving people when an anonymous id is merged (R25).
  await knex.raw('CREATE INDEX events_anonymous_id ON events (anonymous_id) WHERE anonymous_id IS NOT NULL')

  // R25: an anonymous id (or alias previousId) and the person it belongs to.
  await knex.schema.createTable('identity_links', (t) => {
    t.text('anonymous_id').primary()
    t.text('person_id').notNullable().index()
    t.timestamp('linked_at', { useTz: true }).notNullable()
    t.bigInteger('linked_seq').notNullable()
    t.text('message_id').notNullable()
  })

  await knex.schema.createTable('deliveries', (t) => {
    t.text('delivery_id').primary()
    t.text('person_id').notNullable().index()
    // campaign_id / canvas_id as the sender named it; campaign_key is the
    // configured campaign it resolves to (R4), null while unknown.
    t.text('campaign_ref')
    t.text('campaign_key')
    t.text('journey_ref')
    t.text('journey_id')
    t.text('channel').notNullable()
    t.text('action_id')
    t.timestamp('drafted_at', { useTz: true })
    t.timestamp('attempted_at', { useTz: true })
    // Effective step times: the earliest time recorded for the step or any
    // later one (CONTRACT.md, R5, R7), so a click alone sets all four.
    t.timestamp('sent_at', { useTz: true })
    t.timestamp('delivered_at', { useTz: true })
    t.timestamp('opened_at', { useTz: true })
    t.timestamp('clicked_at', { useTz: true })
    t.timestamp('failed_at', { useTz: true })
    t.boolean('after_exit').notNullable().defaultTo(false)
    t.timestamp('converted_at', { useTz: true })
    t.timestamp('first_received_at', { useTz: true }).notNullable()
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now())
    t.index(['campaign_key', 'sent_at'])
    t.index(['campaign_ref'])
  })

  // Messages accepted over HTTP that the worker can never store: kept with
  // their reason, never retried forever, never silently dropped.
  await knex.schema.createTable('rejected_messages', (t) => {
    t.bigIncrements('id')
    t.text('message_id').unique()
    t.text('source').notNullable()
    t.timestamp('received_at', { useTz: true })
    t.text('reason').notNullable()
    t.text('payload').notNullable()
    t.timestamp('rejected_at', { useTz: true }).notNullable().defaultTo(knex.fn.now())
  })
}

export async function down(knex: Knex): Promise<void> {
  for (const table of ['rejected_messages', 'deliveries', 'identity_links', 'events', 'people'])
    await knex.schema.dropTableIfExists(table)
}
