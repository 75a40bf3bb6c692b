import { Queue, type JobsOptions } from 'bullmq'
import type { Redis } from 'ioredis'
import type { Source } from '../db/events.ts'
import type { IngestMessage } from '../segment/normalise.ts'
import { QueueUnavailableError } from '../errors.ts'
import { GroupCommitter } from './group-commit.ts'
import { withTimeout } from '../timeout.ts'

/**
 * Queue names carry a Redis Cluster hash tag, so every key of one queue lands
 * in one slot whatever the prefix is (`goalpost:{ingest}:…`).
 */
export const QUEUE_NAMES = { ingest: '{ingest}', maintenance: '{maintenance}' } as const

/**
 * BullMQ records job events in a Redis stream per queue (10,000 entries by
 * default). goalpost itself reads none of them; a short stream keeps Redis
 * memory small and flat while still serving QueueEvents listeners that keep up.
 */
export const EVENT_STREAM = { events: { maxLen: 1_000 } }

/**
 * Jobs of the maintenance queue: the scheduled wake-up (R22, R23), recomputes
 * (R3) and retention runs; `schedule` names the configured schedule that
 * started it (src/jobs/schedules.ts), absent for one asked for by the API.
 */
export type MaintenanceJobData =
  | { kind: 'wake' }
  | { kind: 'recompute'; campaign?: string; dryRun?: boolean; schedule?: string }
  | { kind: 'retention'; olderThanMs: number; schedule?: string }

/** How often the scheduled refresh looks for people whose next change in time has come. */
export const WAKE_EVERY_MS = 5_000

export function createMaintenanceQueue(connection: Redis, prefix: string): Queue<MaintenanceJobData> {
  return new Queue<MaintenanceJobData>(QUEUE_NAMES.maintenance, {
    connection,
    prefix,
    defaultJobOptions: { attempts: 5, backoff: { type: 'exponential', delay: 1_000 }, removeOnComplete: { count: 100 }, removeOnFail: { age: 7 * 24 * 3600 } },
    streams: EVENT_STREAM,
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
    streams: EVENT_STREAM,
    skipWaitingForReady: true,
  })
}

/** Queues a maintenance job (503 when Redis cannot take it); resolves to its id. */
export async function enqueueMaintenance(queue: Queue<MaintenanceJobData>, data: MaintenanceJobData, timeoutMs = 5_000): Promise<string> {
  return queueWithin(queue.add(data.kind, data), timeoutMs).then((job) => job.id as string)
}

/** `work`, or QueueUnavailableError (503) when Redis does not answer in time. */
async function queueWithin<T>(work: Promise<T>, timeoutMs: number, onTimeout?: () => void): Promise<T> {
  try {
    return await withTimeout(work, timeoutMs, `Redis did not answer within ${timeoutMs} ms`, onTimeout)
  } catch (err) {
    throw new QueueUnavailableError(err)
  }
}

/**
 * Queues accepted batches with group commit: batches of one source accepted
 * while earlier ones are being added wait together and go to Redis as one
 * job, of at most `maxMessages` messages and `maxBytes` bytes (a larger batch
 * goes alone). An idle producer adds a batch at once. Every request still
 * resolves only once Redis has the job holding its messages, and rejects with
 * QueueUnavailableError when that does not happen within `timeoutMs`: a
 * batch still waiting then is dropped, one whose add had started may still
 * land (the client's retry is then a duplicate, which the messageId makes
 * harmless). Fewer, larger jobs cost less everywhere a job
 * costs (the Lua scripts, the events stream, the worker's fetch, lock and
 * completion). The byte bound keeps a worker's held jobs small whatever the
 * messages' sizes.
 */
export class IngestProducer {
  readonly #bySource = new Map<Source, GroupCommitter<{ data: IngestJobData; bytes: number }, void>>()

  constructor(
    readonly queue: Queue<IngestJobData>,
    private readonly opts: { maxMessages?: number; maxBytes?: number; timeoutMs?: number; maxInFlight?: number } = {},
  ) {}

  /** `bytes`: the batch's size as sent (its messages serialised). */
  enqueue(data: IngestJobData, bytes: number): Promise<void> {
    let committer = this.#bySource.get(data.source)
    if (!committer) {
      const source = data.source
      const maxMessages = this.opts.maxMessages ?? 1_000
      const maxBytes = this.opts.maxBytes ?? 1_000_000
      committer = new GroupCommitter<{ data: IngestJobData; bytes: number }, void>(
        async (batches) => {
          await this.queue.add('batch', batches.length === 1 ? batches[0].data : { source, messages: batches.flatMap((b) => b.data.messages) })
          return batches.map(() => ({ ok: true, value: undefined }))
        },
        {
          // Whichever bound is nearer: each counts as a fraction of a whole group.
          weight: (b) => Math.max(b.data.messages.length / maxMessages, b.bytes / maxBytes),
          maxWeight: 1,
          maxInFlight: this.opts.maxInFlight ?? 4,
        },
      )
      this.#bySource.set(source, committer)
    }
    // A request that times out while its batch still waits takes the batch
    // out, so a 503 means "not queued" unless the add had already started.
    const abort = new AbortController()
    return queueWithin(committer.submit({ data, bytes }, abort.signal), this.opts.timeoutMs ?? 5_000, () => abort.abort(new Error('timed out')))
  }
}
