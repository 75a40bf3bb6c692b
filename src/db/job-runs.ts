import type { Knex } from 'knex'
import type { WriteSummary } from './evaluation.ts'

/**
 * `job_runs`: one row per recompute and retention run, whoever started it
 * (docs/sql-cookbook.md, "Job history"). A run is written when it starts and
 * again when it ends; a run whose worker died keeps finished_at null (BullMQ
 * runs the job again, as a new run).
 */

export type JobKind = 'recompute' | 'retention'
export type JobTrigger = 'cli' | 'api' | 'schedule'

export interface RunStart {
  kind: JobKind
  /** `all`, `campaign:<key>` (recompute), `older_than:<duration>` (retention). */
  scope: string
  dryRun?: boolean
  trigger: JobTrigger
  /** The schedule's name, when a schedule started it. */
  schedule?: string
  /** The BullMQ job, when a worker ran it. */
  jobId?: string
  startedAt: Date
}

export interface RunEnd {
  finishedAt: Date
  people?: number
  eventsDeleted?: number
  changes?: WriteSummary
  error?: string
}

export async function startRun(db: Knex, run: RunStart): Promise<number> {
  const [{ run_id }] = await db('job_runs')
    .insert({
      kind: run.kind,
      scope: run.scope,
      dry_run: run.dryRun ?? false,
      trigger: run.trigger,
      schedule: run.schedule ?? null,
      job_id: run.jobId ?? null,
      started_at: run.startedAt.toISOString(),
    })
    .returning('run_id')
  return Number(run_id)
}

const TABLES = ['journeys', 'conversions', 'memberships', 'deliveries'] as const

export async function finishRun(db: Knex, runId: number, end: RunEnd): Promise<void> {
  const counts: Record<string, number> = {}
  if (end.changes)
    for (const t of TABLES) for (const f of ['added', 'changed', 'removed'] as const) counts[`${t}_${f}`] = end.changes[t][f]
  await db('job_runs')
    .where({ run_id: runId })
    .update({
      finished_at: end.finishedAt.toISOString(),
      people: end.people ?? null,
      events_deleted: end.eventsDeleted ?? null,
      error: end.error ?? null,
      ...counts,
    })
}

/**
 * Runs `work` as a recorded run: its row is written before it starts and
 * completed with what it returns, or with its error (which is rethrown).
 */
export async function recordRun<T>(db: Knex, run: RunStart, work: () => Promise<T>, summarise: (result: T) => Omit<RunEnd, 'finishedAt'>): Promise<T> {
  const runId = await startRun(db, run)
  let result: T
  try {
    result = await work()
  } catch (err) {
    await finishRun(db, runId, { finishedAt: new Date(), error: err instanceof Error ? err.message : String(err) }).catch(() => {})
    throw err
  }
  await finishRun(db, runId, { finishedAt: new Date(), ...summarise(result) })
  return result
}

export interface JobRunRow {
  run_id: string
  kind: JobKind
  scope: string
  dry_run: boolean
  trigger: JobTrigger
  schedule: string | null
  job_id: string | null
  started_at: Date
  finished_at: Date | null
  people: number | null
  events_deleted: string | null
  error: string | null
  [count: string]: unknown
}

/** The latest runs, newest first, optionally of one kind or trigger. */
export async function listRuns(db: Knex, opts: { limit: number; kind?: JobKind; trigger?: JobTrigger }): Promise<JobRunRow[]> {
  const q = db<JobRunRow>('job_runs').orderBy('run_id', 'desc').limit(opts.limit)
  if (opts.kind) q.where({ kind: opts.kind })
  if (opts.trigger) q.where({ trigger: opts.trigger })
  return q.select('*')
}
