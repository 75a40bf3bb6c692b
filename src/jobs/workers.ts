import { Worker } from 'bullmq'
import type { Knex } from 'knex'
import type { Config } from '../config.ts'
import type { Logger } from '../logger.ts'
import { deliveryEventTable } from '../plugin/delivery-events.ts'
import { createRedis } from './redis.ts'
import { BACKOFF_STRATEGY, QUEUE_NAMES, backoffDelay, type IngestJobData } from './queues.ts'
import { createIngestProcessor, type IngestResult } from './ingest-processor.ts'

export interface RunningWorkers {
  ingest: Worker<IngestJobData, IngestResult>
  close(): Promise<void>
}

/** Starts the ingest worker (and, later, evaluation and scheduled jobs). */
export function startWorkers(
  config: Pick<Config, 'redisUrl' | 'queuePrefix' | 'ingestConcurrency' | 'jobLockMs'>,
  db: Knex,
  log: Logger,
): RunningWorkers {
  const connection = createRedis(config.redisUrl, 'worker')
  const ingest = new Worker<IngestJobData, IngestResult>(
    QUEUE_NAMES.ingest,
    createIngestProcessor({ db, log, deliveryTable: () => deliveryEventTable() }),
    {
      connection,
      prefix: config.queuePrefix,
      concurrency: config.ingestConcurrency,
      // Re-running a batch is harmless (idempotent), so a worker killed
      // mid-job never turns the job into a failure.
      maxStalledCount: 20,
      lockDuration: config.jobLockMs,
      stalledInterval: config.jobLockMs,
      settings: {
        backoffStrategy: (attemptsMade, type) => (type === BACKOFF_STRATEGY ? backoffDelay(attemptsMade) : 1_000),
      },
    },
  )
  ingest.on('failed', (job, err) =>
    log.error({ err, jobId: job?.id, attemptsMade: job?.attemptsMade }, 'ingest job failed; it will be retried unless attempts are used up'),
  )
  ingest.on('error', (err) => log.error({ err }, 'ingest worker error'))
  return {
    ingest,
    async close() {
      await ingest.close()
      connection.disconnect()
    },
  }
}
