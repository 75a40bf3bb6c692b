import type { Knex } from 'knex'

/**
 * Room on each page for updated rows, so that an update which changes no
 * indexed column is a HOT update (no new entry in any index):
 *
 * - `deliveries`: every lifecycle event after the first (delivered, opened,
 *   clicked) rewrites its delivery's row, and the row has four indexes. On
 *   full pages each of those rewrites inserted into all four.
 * - `people`: every identify rewrites the person's attributes.
 *
 * Pages written from now on keep the room; existing pages get it as they are
 * rewritten (VACUUM FULL or CLUSTER would do it at once).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw('ALTER TABLE deliveries SET (fillfactor = 80)')
  await knex.raw('ALTER TABLE people SET (fillfactor = 80)')
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('ALTER TABLE deliveries RESET (fillfactor)')
  await knex.raw('ALTER TABLE people RESET (fillfactor)')
}
