import type { Knex } from 'knex'

/**
 * Outbound changes (docs/outbound.md): the transactional outbox, its
 * cluster-wide counters, and the `webhooks` section of the configuration.
 *
 * `outbox` grows with traffic, so its key starts with `person_id` (the column
 * a distributed Postgres would shard on). A row is one change (a conversion
 * recorded or revoked, a journey entered or exited) for one destination
 * (`segment`, `webhook:<name>`), written in the transaction that wrote the
 * change; a worker sends it and sets `sent_at`, or schedules the next attempt,
 * or keeps it as `failed_permanently` with the reason.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE TABLE outbox (
      id                 bigint GENERATED ALWAYS AS IDENTITY,
      person_id          text NOT NULL,
      destination        text NOT NULL,
      change             text NOT NULL,
      journey_id         text NOT NULL,
      campaign_key       text NOT NULL,
      payload            jsonb NOT NULL,
      created_at         timestamptz NOT NULL DEFAULT now(),
      attempts           int NOT NULL DEFAULT 0,
      next_attempt_at    timestamptz NOT NULL DEFAULT now(),
      sent_at            timestamptz,
      last_error         text,
      -- A refusal of a whole batch: sent alone next time, to learn whether it is this one.
      send_alone         boolean NOT NULL DEFAULT false,
      failed_permanently boolean NOT NULL DEFAULT false,
      PRIMARY KEY (person_id, id)
    )`)
  // The drain's claim: due rows, oldest first; small (sent rows leave it).
  await knex.raw('CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE sent_at IS NULL AND NOT failed_permanently')
  // GET /admin/outbox and the retry by hand.
  await knex.raw('CREATE INDEX outbox_failed ON outbox (destination, id) WHERE failed_permanently')
  // Pruning sent rows.
  await knex.raw('CREATE INDEX outbox_sent_at ON outbox USING brin (sent_at)')

  // Sent and failed attempts per destination, for /metrics from any process.
  await knex.raw(`
    CREATE TABLE outbox_counters (
      destination text PRIMARY KEY,
      sent        bigint NOT NULL DEFAULT 0,
      failed      bigint NOT NULL DEFAULT 0
    )`)

  // The document's `webhooks` section, saved like segments and campaigns.
  await knex.schema.createTable('config_webhooks', (t) => {
    t.text('name').primary()
    t.jsonb('definition').notNullable()
    t.integer('revision').notNullable()
    t.timestamp('archived_at', { useTz: true })
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now())
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now())
  })
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('config_webhooks')
  await knex.schema.dropTableIfExists('outbox_counters')
  await knex.schema.dropTableIfExists('outbox')
}
