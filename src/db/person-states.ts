import type { Knex } from 'knex'

/**
 * How long a person whose stored state was invalidated (an import stored
 * inputs for them and has not evaluated them yet) waits before the scheduled
 * wake-up evaluates them anyway: long enough that a running import, which
 * evaluates its people itself, is not raced by the wake-up every few seconds;
 * short enough that an import that died leaves nobody unevaluated for long.
 */
export const INVALIDATED_WAKE_DELAY_MS = 10 * 60_000

/**
 * Drops the stored evaluation state of these people (the next evaluation
 * replays their whole log) and makes sure the scheduled wake-up evaluates
 * them within INVALIDATED_WAKE_DELAY_MS, whoever else does or does not.
 * For writers that store inputs without evaluating them in the same
 * transaction (import): every other writer folds its inputs into the state
 * before committing, so a state never silently misses an input.
 */
export async function invalidateStates(trx: Knex.Transaction | Knex, personIds: readonly string[], now: number): Promise<void> {
  if (personIds.length === 0) return
  const wakeAt = new Date(now + INVALIDATED_WAKE_DELAY_MS).toISOString()
  await trx.raw(
    `INSERT INTO person_evaluations (person_id, evaluated_at, config_revision, next_wake_at, state)
     SELECT id, ?, 0, ?, NULL FROM unnest(?::text[]) AS id ORDER BY 1
     ON CONFLICT (person_id) DO UPDATE
       SET state = NULL,
           next_wake_at = LEAST(coalesce(person_evaluations.next_wake_at, excluded.next_wake_at), excluded.next_wake_at)`,
    [new Date(now).toISOString(), wakeAt, [...new Set(personIds)]],
  )
}
