import type { Knex } from 'knex'
import { evaluatePeople, type EvaluationContext } from './evaluate.ts'

/**
 * The scheduled refresh (R22, R23): evaluates the people for whom time alone
 * has changed something since their last evaluation (a rolling window has
 * passed, a journey outlived its journey_ttl). Each outcome carries the exact
 * instant it became due, whatever the moment this runs.
 */
export async function wakeDuePeople(db: Knex, ctx: EvaluationContext, now: number, batchSize = 200): Promise<number> {
  let woken = 0
  for (;;) {
    const { rows } = await db.raw<{ rows: { person_id: string }[] }>(
      `SELECT person_id FROM person_evaluations WHERE next_wake_at <= ? ORDER BY next_wake_at LIMIT ?`,
      [new Date(now).toISOString(), batchSize],
    )
    if (rows.length === 0) return woken
    await evaluatePeople(db, rows.map((r) => r.person_id), ctx, now)
    woken += rows.length
    if (rows.length < batchSize) return woken
  }
}
