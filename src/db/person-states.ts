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
 * before committing, so a state never silently misses an input. The caller
 * holds the people's locks (lockPeople / lockNamedPeople), so no evaluation
 * writes a state between the check for an invalidated row and the commit.
 */
export async function invalidateStates(trx: Knex.Transaction | Knex, personIds: readonly string[], now: number): Promise<void> {
  if (personIds.length === 0) return
  const wakeAt = new Date(now + INVALIDATED_WAKE_DELAY_MS).toISOString()
  await trx.raw(
    `INSERT INTO person_evaluations (person_id, evaluated_at, config_revision, next_wake_at, state)
     SELECT id, ?, 0, ?, NULL FROM unnest(?::text[]) AS id
      -- Already invalidated and woken no later: left alone (ON CONFLICT
      -- would lock and rewrite the row to no effect, every import batch).
      WHERE NOT EXISTS (SELECT 1 FROM person_evaluations e
                         WHERE e.person_id = id AND e.state IS NULL AND e.next_wake_at <= ?::timestamptz)
      ORDER BY 1
     ON CONFLICT (person_id) DO UPDATE
       SET state = NULL,
           next_wake_at = LEAST(coalesce(person_evaluations.next_wake_at, excluded.next_wake_at), excluded.next_wake_at)`,
    [new Date(now).toISOString(), wakeAt, [...new Set(personIds)], wakeAt],
  )
}

export interface StoredState {
  configRevision: number
  /** null: none stored (never evaluated, or invalidated). */
  state: unknown
}

/** The stored states of these people (as written: the caller decodes and checks them). */
export async function loadStates(trx: Knex.Transaction | Knex, personIds: readonly string[]): Promise<Map<string, StoredState>> {
  const out = new Map<string, StoredState>()
  if (personIds.length === 0) return out
  const { rows } = await trx.raw<{ rows: { person_id: string; config_revision: string; state: unknown }[] }>(
    `SELECT person_id, config_revision, state FROM person_evaluations WHERE person_id = ANY(?::text[])`,
    [[...personIds]],
  )
  for (const r of rows) out.set(r.person_id, { configRevision: Number(r.config_revision), state: r.state })
  return out
}

export interface EvaluationMark {
  personId: string
  nextWakeAt: number | null
  state: unknown
}

/**
 * Records each person's evaluation: when, under which configuration
 * revision, when to look again (R22, R23), and the state to resume from.
 * Returns the configuration revision in force as this transaction sees it,
 * so a caller that evaluated with a cached configuration can tell it was
 * replaced meanwhile, in the same round trip.
 */
export async function saveEvaluations(trx: Knex.Transaction, marks: readonly EvaluationMark[], configRevision: number, now: number): Promise<number> {
  const { rows } = await trx.raw<{ rows: { revision: number }[] }>(
    `WITH saved AS (
       INSERT INTO person_evaluations (person_id, evaluated_at, config_revision, next_wake_at, state)
       SELECT r.person_id, ?, ?, r.next_wake_at, nullif(r.state, 'null'::jsonb)
         FROM ROWS FROM (unnest(?::text[]), unnest(?::timestamptz[]), jsonb_array_elements(?::jsonb)) AS r(person_id, next_wake_at, state)
        ORDER BY r.person_id
       ON CONFLICT (person_id) DO UPDATE SET evaluated_at = excluded.evaluated_at,
         config_revision = excluded.config_revision, next_wake_at = excluded.next_wake_at, state = excluded.state
       RETURNING 1
     )
     SELECT (SELECT coalesce(max(revision), 0)::int FROM config_revisions) AS revision, (SELECT count(*) FROM saved) AS saved`,
    [
      new Date(now).toISOString(),
      configRevision,
      marks.map((m) => m.personId),
      marks.map((m) => (m.nextWakeAt === null ? null : new Date(m.nextWakeAt).toISOString())),
      JSON.stringify(marks.map((m) => m.state ?? null)),
    ] as Knex.RawBinding[],
  )
  return rows[0].revision
}

/** The configuration revision in force, as this transaction sees it. */
export async function configRevisionInForce(trx: Knex.Transaction | Knex): Promise<number> {
  const { rows } = await trx.raw<{ rows: { revision: number }[] }>(`SELECT coalesce(max(revision), 0)::int AS revision FROM config_revisions`)
  return rows[0].revision
}
