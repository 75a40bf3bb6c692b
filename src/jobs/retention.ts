import type { Knex } from 'knex'
import { retentionFloor, type CampaignDocument } from '../core/config-document/index.ts'
import { formatDuration } from '../core/duration.ts'
import type { EngineConfig } from '../core/model.ts'
import { lockPeople } from '../db/events.ts'
import { recordRun, type JobTrigger } from '../db/job-runs.ts'

/**
 * Retention (docs/operations.md, "Retention"): deletes the raw events
 * processed more than `older_than` ago, in small transactions, so ingestion
 * never waits on it. identify and alias calls are kept: people's attributes
 * and identities are folded from them, and they are few. Every person whose
 * log it shortens gets a horizon (retention_horizons): a recompute leaves
 * their rows as the whole log made them.
 */

export interface RetentionOptions {
  olderThanMs: number
  now: number
  /** Sequence numbers (events.seq) one transaction covers. */
  batchSize?: number
  onProgress?: (done: number, total: number) => void
  trigger?: JobTrigger
  schedule?: string
  jobId?: string
}

export interface RetentionResult {
  /** Events processed before this instant were deleted (but identify and alias). */
  horizon: string
  eventsDeleted: number
  /** People whose log got shorter in this run. */
  people: number
  batches: number
}

/** An age the configuration in force does not allow (it changed since the schedule was saved). */
export class RetentionTooShortError extends Error {
  constructor(olderThanMs: number, floor: string) {
    super(`retention older_than ${formatDuration(olderThanMs)} is not longer than ${floor}; nothing was deleted`)
    this.name = 'RetentionTooShortError'
  }
}

/** The floor of the configuration in force, over every goal version (R13: old versions still judge old inputs). */
export function configRetentionFloor(config: EngineConfig): { ms: number; what: string } {
  const campaigns: CampaignDocument[] = config.campaigns.flatMap((c) => {
    const { goals, ...rest } = c
    const versions = goals.flatMap((v) => (v.goal ? [{ ...rest, goal: v.goal }] : []))
    return versions.length > 0 ? versions : [rest]
  })
  return retentionFloor(campaigns, config.segments)
}

/** The people one slice of sequence numbers has old events of. */
const SLICE_PEOPLE = `
  SELECT DISTINCT person_id FROM events
   WHERE seq > ? AND seq <= ? AND received_at < ? AND type NOT IN ('identify', 'alias')`

/** Deletes those people's old events of the slice and records their horizons, in one statement. */
const DELETE_SLICE = `
  WITH deleted AS (
    DELETE FROM events
     WHERE seq > ? AND seq <= ? AND received_at < ? AND type NOT IN ('identify', 'alias')
       AND person_id = ANY(?::text[])
    RETURNING person_id
  ), per_person AS (
    SELECT person_id, count(*) AS n FROM deleted GROUP BY person_id
  ), horizons AS (
    INSERT INTO retention_horizons (person_id, horizon, events_deleted, updated_at)
    SELECT person_id, ?, n, now() FROM per_person ORDER BY person_id
    ON CONFLICT (person_id) DO UPDATE
      SET horizon = GREATEST(retention_horizons.horizon, excluded.horizon),
          events_deleted = retention_horizons.events_deleted + excluded.events_deleted,
          updated_at = now()
    RETURNING 1
  )
  SELECT (SELECT count(*) FROM deleted)::int AS events, (SELECT count(*) FROM horizons)::int AS people`

/** A slice's transaction again after a deadlock with an ingest transaction taking people's locks in two steps (R25 merges). */
async function retryingDeadlocks<T>(work: () => Promise<T>, attempts = 5): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await work()
    } catch (err) {
      const code = (err as { code?: string }).code
      if (attempt >= attempts || (code !== '40P01' && code !== '40001')) throw err
    }
  }
}

/**
 * Walks the log once by its sequence (the unique index on events.seq), a
 * slice a short transaction under the slice's people's locks, up to the last event stored when it started; later
 * ones are younger than any horizon (an import of older messages meanwhile is
 * deleted by the next run). Recorded in job_runs.
 */
export async function runRetention(db: Knex, config: EngineConfig, opts: RetentionOptions): Promise<RetentionResult> {
  const horizon = new Date(opts.now - opts.olderThanMs).toISOString()
  return recordRun(
    db,
    {
      kind: 'retention',
      scope: `older_than:${formatDuration(opts.olderThanMs)}`,
      trigger: opts.trigger ?? 'cli',
      schedule: opts.schedule,
      jobId: opts.jobId,
      startedAt: new Date(opts.now),
    },
    async () => {
      const floor = configRetentionFloor(config)
      if (opts.olderThanMs <= floor.ms) throw new RetentionTooShortError(opts.olderThanMs, floor.what)
      const step = opts.batchSize ?? 5_000
      const { rows } = await db.raw<{ rows: { first: string | null; last: string | null }[] }>(
        `SELECT min(seq) AS first, max(seq) AS last FROM events WHERE received_at < ?`,
        [horizon],
      )
      const result: RetentionResult = { horizon, eventsDeleted: 0, people: 0, batches: 0 }
      if (rows[0].first === null) return result
      // Postgres's clock, which stamps the horizons' updated_at: people are counted once however many slices they span.
      const [{ since }] = (await db.raw<{ rows: { since: Date }[] }>(`SELECT clock_timestamp() AS since`)).rows
      const first = Number(rows[0].first) - 1
      const last = Number(rows[0].last)
      for (let after = first; after < last; after += step) {
        // Under the people's locks, as every evaluation of them runs: a replay
        // (a recompute's, say) sees their whole log or what is left and their
        // horizon, never a log shortened under it. Each waits milliseconds.
        const deleted = await retryingDeadlocks(() => db.transaction(async (trx) => {
          const { rows: people } = await trx.raw<{ rows: { person_id: string }[] }>(SLICE_PEOPLE, [after, after + step, horizon])
          if (people.length === 0) return 0
          const ids = people.map((p) => p.person_id)
          await lockPeople(trx, ids)
          const { rows } = await trx.raw<{ rows: { events: number }[] }>(DELETE_SLICE, [after, after + step, horizon, ids, horizon])
          return rows[0].events
        }))
        result.eventsDeleted += deleted
        result.batches++
        opts.onProgress?.(Math.min(after + step, last) - first, last - first)
      }
      const [{ people }] = (
        await db.raw<{ rows: { people: number }[] }>(`SELECT count(*)::int AS people FROM retention_horizons WHERE updated_at >= ?`, [since])
      ).rows
      result.people = people
      return result
    },
    (r) => ({ people: r.people, eventsDeleted: r.eventsDeleted }),
  )
}
