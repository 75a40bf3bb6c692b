import type { Knex } from 'knex'

/**
 * What the rules derive from the log (R3): segment membership history,
 * journeys and conversions, plus when each person must be looked at again
 * because time alone will change something (R22, R23). All keyed by person.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE TABLE segment_memberships (
      segment_key      text NOT NULL,
      person_id        text NOT NULL,
      joined_at        timestamptz NOT NULL,
      left_at          timestamptz,
      join_message_id  text,
      leave_message_id text,
      PRIMARY KEY (person_id, segment_key, joined_at)
    )`)
  await knex.raw('CREATE INDEX segment_memberships_segment ON segment_memberships (segment_key, joined_at)')
  // "Who is in the segment now" is the common question.
  await knex.raw('CREATE INDEX segment_memberships_current ON segment_memberships (segment_key) WHERE left_at IS NULL')

  await knex.raw(`
    CREATE TABLE journeys (
      journey_id       text PRIMARY KEY,
      campaign_key     text NOT NULL,
      person_id        text NOT NULL,
      entered_at       timestamptz NOT NULL,
      entry_cause      text NOT NULL CHECK (entry_cause IN ('event_trigger', 'segment_trigger', 'delivery')),
      entry_message_id text,
      goal_version     int,
      exited_at        timestamptz,
      exit_reason      text CHECK (exit_reason IN ('goal', 'unmatch')),
      completed_at     timestamptz,
      converted_at     timestamptz,
      updated_at       timestamptz NOT NULL DEFAULT now()
    )`)
  await knex.raw('CREATE INDEX journeys_person ON journeys (person_id, campaign_key)')
  await knex.raw('CREATE INDEX journeys_campaign ON journeys (campaign_key, entered_at)')

  await knex.raw(`
    CREATE TABLE conversions (
      journey_id       text PRIMARY KEY,
      campaign_key     text NOT NULL,
      person_id        text NOT NULL,
      delivery_id      text NOT NULL,
      goal_version     int NOT NULL,
      goal_type        text NOT NULL CHECK (goal_type IN ('event', 'segment')),
      event_message_id text,
      converted_at     timestamptz NOT NULL,
      anchor_at        timestamptz NOT NULL,
      attributed_via   text NOT NULL CHECK (attributed_via IN ('delivered', 'opened', 'clicked')),
      channel          text NOT NULL,
      value            numeric,
      updated_at       timestamptz NOT NULL DEFAULT now()
    )`)
  await knex.raw('CREATE INDEX conversions_person ON conversions (person_id)')
  await knex.raw('CREATE INDEX conversions_campaign ON conversions (campaign_key, converted_at)')
  await knex.raw('CREATE INDEX conversions_delivery ON conversions (delivery_id)')

  await knex.raw('CREATE INDEX deliveries_journey ON deliveries (journey_id) WHERE journey_id IS NOT NULL')

  await knex.raw(`
    CREATE TABLE person_evaluations (
      person_id       text PRIMARY KEY,
      evaluated_at    timestamptz NOT NULL,
      config_revision bigint NOT NULL,
      next_wake_at    timestamptz
    )`)
  await knex.raw('CREATE INDEX person_evaluations_wake ON person_evaluations (next_wake_at) WHERE next_wake_at IS NOT NULL')
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP INDEX IF EXISTS deliveries_journey')
  for (const table of ['person_evaluations', 'conversions', 'journeys', 'segment_memberships'])
    await knex.schema.dropTableIfExists(table)
}
