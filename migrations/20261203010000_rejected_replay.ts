import type { Knex } from 'knex'

/**
 * Dead letters can be replayed (`goalpost rejected replay`, `POST
 * /admin/rejected/replay`): `replayed_at` marks a message queued again (or
 * found stored already), so a second replay leaves it alone; a replayed
 * message Postgres refuses again clears it, with the new reason.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw('ALTER TABLE rejected_messages ADD COLUMN replayed_at timestamptz')
  await knex.raw('CREATE INDEX rejected_messages_rejected_at ON rejected_messages (rejected_at)')
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP INDEX IF EXISTS rejected_messages_rejected_at')
  await knex.raw('ALTER TABLE rejected_messages DROP COLUMN IF EXISTS replayed_at')
}
