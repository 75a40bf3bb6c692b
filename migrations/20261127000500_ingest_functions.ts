import type { Knex } from 'knex'

/**
 * Two multi-step pieces of the ingest transaction as server-side functions,
 * one round trip each instead of three. Under load every statement of the
 * ingest transaction waits for a CPU on both ends, so statements, not rows,
 * set its length. Each query in a VOLATILE PL/pgSQL function takes a fresh
 * snapshot (READ COMMITTED), which both functions rely on: they lock first
 * and then read what the lock holders committed. Their queries are planned
 * once per session for any input (generic plans), so ids are joined from
 * unnest(), never matched with `= ANY(array)`: in a generic plan that is a
 * linear scan of the array for every row of a sequential scan.
 *
 * goalpost_lock_named_people(named): takes the person advisory locks
 *   (hashtextextended(id, 0)) of the named ids and of the people their
 *   identity links point to now (R25), reading the links again after each
 *   round of locks until nothing new turns up (a link changes only under its
 *   anonymous id's lock, so once those are held the people are final).
 *   Returns every id it locked.
 *
 * goalpost_refold_traits(ids): recomputes the people's attributes from every
 *   identify in their logs in rule order (R2: received_at, seq): a shallow
 *   merge where the last value named for a key wins and a null removes the
 *   key, which is core/attributes.ts foldTraits; the people rows are locked
 *   before the log is read.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE FUNCTION goalpost_lock_named_people(named text[]) RETURNS SETOF text
    LANGUAGE plpgsql VOLATILE AS $$
    DECLARE
      locked text[] := '{}';
      missing text[];
    BEGIN
      LOOP
        SELECT array_agg(id) INTO missing FROM (
          SELECT id FROM unnest(named) AS id
          UNION
          SELECT l.person_id FROM unnest(named) AS n(id) JOIN identity_links l ON l.anonymous_id = n.id
          EXCEPT
          SELECT unnest(locked)
        ) AS ids;
        EXIT WHEN missing IS NULL;
        -- In key order, so two transactions never wait on each other's keys in a circle.
        PERFORM pg_advisory_xact_lock(k)
           FROM (SELECT DISTINCT hashtextextended(id, 0) AS k FROM unnest(missing) AS id ORDER BY 1) AS keys;
        locked := locked || missing;
      END LOOP;
      RETURN QUERY SELECT unnest(locked);
    END
    $$`)

  await knex.raw(`
    CREATE FUNCTION goalpost_refold_traits(ids text[]) RETURNS void
    LANGUAGE plpgsql VOLATILE AS $$
    BEGIN
      -- Lock the rows, then read the log: a concurrent batch folding into the
      -- same person has either committed its identifies (read here) or waits
      -- and folds on top of what this writes.
      PERFORM 1 FROM (SELECT DISTINCT unnest(ids) AS id) AS i JOIN people p ON p.person_id = i.id
        ORDER BY p.person_id FOR UPDATE OF p;
      UPDATE people p
         SET attributes = coalesce(f.attributes, '{}'::jsonb),
             traits_received_at = l.received_at, traits_seq = l.seq, updated_at = now()
        FROM (SELECT DISTINCT unnest(ids) AS id) AS i
        LEFT JOIN LATERAL (
          SELECT jsonb_object_agg(key, value) FILTER (WHERE value <> 'null'::jsonb) AS attributes
            FROM (SELECT DISTINCT ON (kv.key) kv.key, kv.value
                    FROM events e CROSS JOIN LATERAL jsonb_each(e.properties) AS kv
                   WHERE e.person_id = i.id AND e.type = 'identify'
                   ORDER BY kv.key, e.received_at DESC, e.seq DESC) AS latest
        ) AS f ON true
        LEFT JOIN LATERAL (
          SELECT e.received_at, e.seq FROM events e
           WHERE e.person_id = i.id AND e.type = 'identify'
           ORDER BY e.received_at DESC, e.seq DESC LIMIT 1
        ) AS l ON true
       WHERE p.person_id = i.id;
    END
    $$`)
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP FUNCTION IF EXISTS goalpost_refold_traits(text[])')
  await knex.raw('DROP FUNCTION IF EXISTS goalpost_lock_named_people(text[])')
}
