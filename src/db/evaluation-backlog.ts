import type { Knex } from 'knex'

/**
 * What the scheduled wake-up (src/jobs/wake.ts) still has to do, for
 * `goalpost status`: people whose next change in time has come
 * (`person_evaluations.next_wake_at` past: a rolling window passed, a journey
 * outlived its journey_ttl, an import left them to evaluate), and people
 * evaluated under an older configuration revision. Counts stop at `cap`, so
 * the answer stays quick on a large table.
 */
export interface EvaluationBacklog {
  duePeople: number
  /** True when there are more than `duePeople` (the count stopped at the cap). */
  duePeopleCapped: boolean
  /** The most overdue next_wake_at (epoch ms), or null when nobody is due. */
  oldestDueAt: number | null
  staleRevisionPeople: number
  staleRevisionPeopleCapped: boolean
}

export interface ConfigRevisionInForce {
  revision: number
  appliedAt: string
  source: string
}

const countUpTo = async (db: Knex, where: string, bindings: readonly Knex.Value[], cap: number) => {
  const { rows } = await db.raw<{ rows: { n: number }[] }>(
    `SELECT count(*)::int AS n FROM (SELECT 1 FROM person_evaluations WHERE ${where} LIMIT ?) s`,
    [...bindings, cap + 1],
  )
  return { count: Math.min(rows[0].n, cap), capped: rows[0].n > cap }
}

export async function evaluationBacklog(db: Knex, now: number, revision: number, cap = 100_000): Promise<EvaluationBacklog> {
  const at = new Date(now).toISOString()
  const due = await countUpTo(db, 'next_wake_at <= ?', [at], cap)
  const { rows } = await db.raw<{ rows: { oldest: Date | null }[] }>('SELECT min(next_wake_at) AS oldest FROM person_evaluations WHERE next_wake_at <= ?', [at])
  const stale = revision > 0 ? await countUpTo(db, 'config_revision < ?', [revision], cap) : { count: 0, capped: false }
  return {
    duePeople: due.count,
    duePeopleCapped: due.capped,
    oldestDueAt: rows[0].oldest?.getTime() ?? null,
    staleRevisionPeople: stale.count,
    staleRevisionPeopleCapped: stale.capped,
  }
}

/** The configuration revision in force (the last applied), or null before the first apply. */
export async function configRevisionInForce(db: Knex): Promise<ConfigRevisionInForce | null> {
  const row = await db('config_revisions').orderBy('revision', 'desc').first('revision', 'source', 'applied_at')
  return row ? { revision: Number(row.revision), appliedAt: (row.applied_at as Date).toISOString(), source: row.source } : null
}
