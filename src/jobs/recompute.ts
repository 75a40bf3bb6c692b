import type { Knex } from 'knex'
import { lockPeople } from '../db/events.ts'
import { addSummary, emptySummary, type WriteSummary } from '../db/evaluation.ts'
import { recordRun, type JobTrigger } from '../db/job-runs.ts'
import { evaluateLocked, type EvaluationContext } from './evaluate.ts'

export interface RecomputeOptions {
  /** Only this campaign's journeys, conversions and deliveries (segments are left as they are). */
  campaign?: string
  /** Compute and count, change nothing. */
  dryRun?: boolean
  now: number
  chunkSize?: number
  onProgress?: (done: number, total: number) => void
  /** Who started it, for job_runs: the CLI (the default), the API, or a schedule. */
  trigger?: JobTrigger
  /** The schedule's name (trigger 'schedule'). */
  schedule?: string
  /** The BullMQ job running it, if any. */
  jobId?: string
}

export interface RecomputeResult {
  people: number
  changes: WriteSummary
  /** People whose log a retention run shortened, whose rows were left as they are (docs/operations.md, "Retention"); absent when none. */
  kept?: number
}

export class UnknownCampaignError extends Error {
  constructor(readonly campaign: string) {
    super(`no active campaign "${campaign}"; check the key with GET /admin/config`)
    this.name = 'UnknownCampaignError'
  }
}

class DryRunRollback extends Error {}

// Everyone with a log or with derived rows: a person merged away (R25) has
// derived rows and no log left, and recomputing them removes those rows.
const EVERYONE = `SELECT person_id FROM people
                  UNION SELECT person_id FROM journeys
                  UNION SELECT person_id FROM segment_memberships`
// But not people whose log retention shortened, theirs or that of an
// anonymous id merged into them since (R25): a replay of what is left would
// drop or misplace what the deleted inputs caused; their rows stay as the
// whole log made them (docs/operations.md, "Retention").
const SHORTENED = `(EXISTS (SELECT 1 FROM retention_horizons h WHERE h.person_id = a.person_id)
                   OR EXISTS (SELECT 1 FROM identity_links l JOIN retention_horizons h ON h.person_id = l.anonymous_id
                               WHERE l.person_id = a.person_id))`
const PEOPLE = `SELECT person_id FROM (${EVERYONE}) a WHERE NOT ${SHORTENED}`

/**
 * Rebuilds what the rules derive from the persisted log (R3), person by
 * person in chunks, each chunk in its own transaction under the people's locks
 * so ingestion keeps running meanwhile. Recorded in job_runs.
 */
export async function recompute(db: Knex, ctx: EvaluationContext, opts: RecomputeOptions): Promise<RecomputeResult> {
  return recordRun(
    db,
    {
      kind: 'recompute',
      scope: opts.campaign === undefined ? 'all' : `campaign:${opts.campaign}`,
      dryRun: opts.dryRun,
      trigger: opts.trigger ?? 'cli',
      schedule: opts.schedule,
      jobId: opts.jobId,
      startedAt: new Date(opts.now),
    },
    () => recomputeChunks(db, ctx, opts),
    (r) => ({ people: r.people, changes: r.changes }),
  )
}

async function recomputeChunks(db: Knex, ctx: EvaluationContext, opts: RecomputeOptions): Promise<RecomputeResult> {
  // Inside the recorded run: a scheduled or queued recompute of a campaign archived since is a failed run.
  if (opts.campaign !== undefined && !ctx.config.campaigns.some((c) => c.key === opts.campaign))
    throw new UnknownCampaignError(opts.campaign)
  const scope = opts.campaign === undefined ? {} : { campaignKeys: [opts.campaign], segmentKeys: [] }
  const chunkSize = opts.chunkSize ?? 500
  const [{ total }] = (await db.raw(`SELECT count(*)::int AS total FROM (${PEOPLE}) p`)).rows as { total: number }[]
  const changes = emptySummary()
  let done = 0
  let after = ''
  opts.onProgress?.(0, total)
  for (;;) {
    const { rows } = await db.raw<{ rows: { person_id: string }[] }>(
      `SELECT person_id FROM (${PEOPLE}) p WHERE person_id > ? ORDER BY person_id LIMIT ?`,
      [after, chunkSize],
    )
    if (rows.length === 0) break
    const ids = rows.map((r) => r.person_id)
    try {
      await db.transaction(async (trx) => {
        await lockPeople(trx, ids)
        // Retention takes the people's locks too: under them, this says whether it shortened one since the list was read.
        const { rows: shortened } = await trx.raw<{ rows: { person_id: string }[] }>(
          `SELECT a.person_id FROM unnest(?::text[]) AS a(person_id) WHERE ${SHORTENED}`,
          [ids],
        )
        const skip = new Set(shortened.map((r) => r.person_id))
        const live = skip.size === 0 ? ids : ids.filter((id) => !skip.has(id))
        if (live.length > 0) addSummary(changes, (await evaluateLocked(trx, live, ctx, opts.now, scope, { replay: true })).summary)
        if (opts.dryRun) throw new DryRunRollback()
      })
    } catch (err) {
      if (!(err instanceof DryRunRollback)) throw err
    }
    done += ids.length
    after = ids[ids.length - 1]
    opts.onProgress?.(Math.min(done, total), total)
  }
  const [{ kept }] = (await db.raw(`SELECT count(*)::int AS kept FROM (${EVERYONE}) a WHERE ${SHORTENED}`)).rows as { kept: number }[]
  return kept > 0 ? { people: done, changes, kept } : { people: done, changes }
}
