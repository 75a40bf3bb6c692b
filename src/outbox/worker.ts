import { Queue, Worker } from 'bullmq'
import type { Knex } from 'knex'
import type { Redis } from 'ioredis'
import type { Config } from '../config.ts'
import type { Logger } from '../logger.ts'
import type { DependencyHealth } from '../dependency-health.ts'
import type { ConfigCache, OutboundOptions } from '../jobs/config-cache.ts'
import { EVENT_STREAM } from '../jobs/queues.ts'
import { drainOutbox } from './drain.ts'
import { pruneSent } from './store.ts'

/**
 * The outbox's own queue (docs/outbound.md): a drain job is queued after
 * every commit that wrote outbox rows (one at a time: a deduplicated job id)
 * and by a job scheduler every OUTBOX_EVERY_MS, which also catches rows whose
 * commit's process died before it could queue the job, and retries that are
 * due.
 */
export const OUTBOX_QUEUE = '{outbox}'
export const OUTBOX_EVERY_MS = 2_000
/** Sent rows are kept this long (for inspection), then deleted. */
export const KEEP_SENT_MS = 7 * 24 * 3600 * 1000
const PRUNE_EVERY_MS = 10 * 60 * 1000

type OutboxConfig = Pick<Config, 'queuePrefix' | 'jobLockMs'> & Partial<Pick<Config, 'forwardWriteKey' | 'forwardHost'>>

export class OutboxRunner {
  readonly queue: Queue
  private worker: Worker | null = null
  private prunedAt = 0

  constructor(
    private readonly config: OutboxConfig,
    private readonly db: Knex,
    private readonly log: Logger,
    connection: Redis,
  ) {
    this.queue = new Queue(OUTBOX_QUEUE, {
      connection,
      prefix: config.queuePrefix,
      defaultJobOptions: { removeOnComplete: true, removeOnFail: { count: 100 }, attempts: 1 },
      streams: EVENT_STREAM,
      skipWaitingForReady: true,
    })
    this.queue.on('error', () => undefined) // the workers' health logging reports Redis outages
  }

  /** What the configuration cache needs: whether Segment is a destination, and how to wake the drain. */
  cacheOptions(): OutboundOptions {
    return { forward: Boolean(this.config.forwardWriteKey), onOutboxWrite: () => this.wake() }
  }

  /** Queues a drain unless one is waiting already; a lost wake-up only waits for the scheduler. */
  wake(): void {
    this.queue.add('drain', {}, { jobId: 'drain-now' }).catch(() => undefined)
  }

  async start(configs: ConfigCache, connection: Redis, health: DependencyHealth): Promise<void> {
    await this.queue.upsertJobScheduler('outbox-drain', { every: OUTBOX_EVERY_MS }, { name: 'drain', data: {} })
    const segment = this.config.forwardWriteKey ? { writeKey: this.config.forwardWriteKey, host: this.config.forwardHost } : null
    this.worker = new Worker(
      OUTBOX_QUEUE,
      async () => {
        const result = await drainOutbox({
          db: this.db,
          segment,
          webhooks: async () => (await configs.get()).outbound?.webhooks ?? [],
          sendTimeoutMs: this.config.jobLockMs,
        })
        if (result.refused > 0) this.log.warn({ ...result }, 'outbox: some changes were refused for good; see GET /admin/outbox')
        if (Date.now() - this.prunedAt > PRUNE_EVERY_MS) {
          this.prunedAt = Date.now()
          await pruneSent(this.db, KEEP_SENT_MS)
        }
        return result
      },
      { connection, prefix: this.config.queuePrefix, concurrency: 1, lockDuration: this.config.jobLockMs * 4 },
    )
    this.worker.on('failed', (_job, err) => {
      if (!health.absorb(err, 'postgres')) this.log.error({ err }, 'outbox drain failed; the next one runs within seconds')
    })
    this.worker.on('error', (err) => {
      if (!health.absorb(err, 'redis')) this.log.error({ err }, 'outbox worker error')
    })
  }

  async close(): Promise<void> {
    await this.worker?.close()
    await this.queue.close()
  }
}
