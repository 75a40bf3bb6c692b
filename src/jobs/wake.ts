import type { Knex } from 'knex'
import { evaluatePeople, type EvaluationContext } from './evaluate.ts'

/**
 * How long after this process first sees a configuration revision it keeps
 * looking for people evaluated under an older one: every cache of the
 * configuration (ingest, eligibility) lags a save by about a second, so an
 * evaluation with the old configuration can still commit shortly after.
 */
const CATCH_UP_MS = 30_000

/** Per database: the revision this process is catching up with, since when, and whether it has. */
const catchUp = new WeakMap<Knex, { revision: number; seenAt: number; done: boolean }>()

/**
 * The scheduled refresh (R22, R23): evaluates the people for whom time alone
 * has changed something since their last evaluation (a rolling window has
 * passed, a journey outlived its journey_ttl). Each outcome carries the exact
 * instant it became due, whatever the moment this runs.
 *
 * It also re-evaluates the people whose rows were derived under an older
 * configuration (R3: the stored rows must equal a recompute under the
 * configuration in force; R13: a goal version with a backdated
 * `effective_from` judges the inputs processed since then; R17: inputs from
 * before a campaign was configured can open journeys). That covers every
 * saved configuration, and the batches a worker evaluated with a
 * configuration it still had cached after a save.
 */
export async function wakeDuePeople(db: Knex, ctx: EvaluationContext, now: number, batchSize = 200): Promise<number> {
  let woken = 0
  const drain = async (sql: string, bindings: readonly Knex.Value[]) => {
    for (;;) {
      const { rows } = await db.raw<{ rows: { person_id: string }[] }>(sql, [...bindings, batchSize])
      if (rows.length === 0) return
      await evaluatePeople(db, rows.map((r) => r.person_id), ctx, now)
      woken += rows.length
      if (rows.length < batchSize) return
    }
  }
  await drain(`SELECT person_id FROM person_evaluations WHERE next_wake_at <= ? ORDER BY next_wake_at LIMIT ?`, [new Date(now).toISOString()])
  if (ctx.revision === 0) return woken
  // R3, R13, R17: catch up with a new configuration (see above).
  let c = catchUp.get(db)
  if (!c || c.revision !== ctx.revision) catchUp.set(db, (c = { revision: ctx.revision, seenAt: now, done: false }))
  if (c.done) return woken
  const before = woken
  await drain(`SELECT person_id FROM person_evaluations WHERE config_revision < ? LIMIT ?`, [ctx.revision])
  // Never evaluated: their inputs meant nothing to the configuration then.
  await drain(
    `SELECT p.person_id FROM people p
      WHERE NOT EXISTS (SELECT 1 FROM person_evaluations e WHERE e.person_id = p.person_id)
      LIMIT ?`,
    [],
  )
  if (woken === before && now - c.seenAt >= CATCH_UP_MS) c.done = true
  return woken
}
