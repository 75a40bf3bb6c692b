import { UnrecoverableError, type Job } from 'bullmq'
import type { Knex } from 'knex'
import type { EvaluationContext } from './evaluate.ts'
import type { MaintenanceJobData } from './queues.ts'
import { recompute, UnknownCampaignError, type RecomputeResult } from './recompute.ts'
import { RetentionTooShortError, runRetention, type RetentionResult } from './retention.ts'

type BatchJobData = Exclude<MaintenanceJobData, { kind: 'wake' }>

/**
 * Runs a recompute or retention job of the maintenance queue, asked for by
 * the API or started by a schedule (recorded so in job_runs).
 */
export async function runBatchJob(db: Knex, ctx: EvaluationContext, job: Job<MaintenanceJobData>, data: BatchJobData): Promise<RecomputeResult | RetentionResult> {
  const common = {
    now: Date.now(),
    trigger: data.schedule === undefined ? ('api' as const) : ('schedule' as const),
    schedule: data.schedule,
    jobId: job.id,
    onProgress: (done: number, total: number) => void job.updateProgress({ done, total }),
  }
  try {
    if (data.kind === 'retention') return await runRetention(db, ctx.config, { ...common, olderThanMs: data.olderThanMs })
    return await recompute(db, ctx, { ...common, campaign: data.campaign, dryRun: data.dryRun })
  } catch (err) {
    // Archived since it was queued, or a configuration that no longer allows the age: retrying cannot help.
    if (err instanceof UnknownCampaignError || err instanceof RetentionTooShortError) throw new UnrecoverableError(err.message)
    throw err
  }
}
