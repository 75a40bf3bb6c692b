import { Queue, type JobsOptions } from 'bullmq'
import type { Redis } from 'ioredis'
import type { Source } from '../db/events.ts'
import type { IngestMessage } from '../plugin/normalise.ts'
import { QueueUnavailableError } from '../errors.ts'

/**
 * Queue names carry a Redis Cluster hash tag, so every key of one queue lands
 * in one slot whatever the prefix is (`goalpost:{ingest}:…`).
 */
export const QUEUE_NAMES = { ingest: '{ingest}', maintenance: '{maintenance}' } as const

/** Jobs of the maintenance queue: the scheduled wake-up (R22, R23) and recomputes (R3). */
export type MaintenanceJobData = { kind: 'wake' } | { kind: 'recompute'; campaign?: string; dryRun?: boolean }

/** How often the scheduled refresh looks for people whose next change in time has come. */
export const WAKE_EVERY_MS = 5_000

export function createMaintenanceQueue(connection: Redis, prefix: string): Queue<MaintenanceJobData> {
  return new Queue<MaintenanceJobData>(QUEUE_NAMES.maintenance, {
    connection,
    prefix,
    defaultJobOptions: { attempts: 5, backoff: { type: 'exponential', delay: 1_000 }, removeOnComplete: { count: 100 }, removeOnFail: { age: 7 * 24 * 3600 } },
    skipWaitingForReady: true,
  })
}

/** One job per accepted request or plugin flush: a batch, never a single event. */
export interface IngestJobData {
  source: Source
  messages: IngestMessage[]
}

/** Retry budget: about an hour and a half of Postgres being away before a job is parked as failed. */
export const INGEST_ATTEMPTS = 100
export const BACKOFF_STRATEGY = 'goalpost'

/** Exponential backoff from 500 ms, capped at one minute, with jitter. */
export function backoffDelay(attemptsMade: number): number {
  const base = Math.min(500 * 2 ** Math.max(0, attemptsMade - 1), 60_000)
  return Math.round(base * (0.75 + Math.random() * 0.5))
}

export const INGEST_JOB_OPTIONS: JobsOptions = {
  attempts: INGEST_ATTEMPTS,
  backoff: { type: BACKOFF_STRATEGY },
  // Completed jobs are in Postgres already: keep Redis memory flat.
  removeOnComplete: true,
  // Failed jobs stay a week for inspection and `Job.retry()`.
  removeOnFail: { age: 7 * 24 * 3600 },
}

export function createIngestQueue(connection: Redis, prefix: string): Queue<IngestJobData> {
  return new Queue<IngestJobData>(QUEUE_NAMES.ingest, {
    connection,
    prefix,
    defaultJobOptions: INGEST_JOB_OPTIONS,
    skipWaitingForReady: true,
  })
}

/**
 * Queues one batch and resolves once Redis has it; rejects with
 * QueueUnavailableError when Redis cannot take it in time.
 */
/** Queues a maintenance job (503 when Redis cannot take it); resolves to its id. */
export async function enqueueMaintenance(queue: Queue<MaintenanceJobData>, data: MaintenanceJobData, timeoutMs = 5_000): Promise<string> {
  return withTimeout(queue.add(data.kind, data), timeoutMs).then((job) => job.id as string)
}

async function withTimeout<T>(work: Promise<T>, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([
      work,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`Redis did not answer within ${timeoutMs} ms`)), timeoutMs)
      }),
    ])
  } catch (err) {
    throw new QueueUnavailableError(err)
  } finally {
    clearTimeout(timer)
  }
}

export async function enqueueBatch(
  queue: Queue<IngestJobData>,
  data: IngestJobData,
  timeoutMs = 5_000,
): Promise<string> {
  return withTimeout(queue.add('batch', data), timeoutMs).then((job) => job.id as string)
}
