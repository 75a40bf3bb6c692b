import type { Knex } from 'knex'

/**
 * Incremental evaluation (docs/conversions.md, "Stored state"): next to when a
 * person must be looked at again, `person_evaluations` keeps the rule state
 * their last evaluation ended in, at a watermark (the last input folded in),
 * so a new input is folded onto it instead of replaying the whole log.
 *
 * `state` is a versioned JSON document written by src/core/engine-state.ts;
 * NULL means "none usable": the next evaluation replays the log. It is only
 * used under the configuration revision it was written with
 * (`config_revision`) and the state version this goalpost writes.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw('ALTER TABLE person_evaluations ADD COLUMN state jsonb')
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('ALTER TABLE person_evaluations DROP COLUMN IF EXISTS state')
}
