import { Worker } from 'bullmq'
import type { Knex } from 'knex'
import type { Config } from '../config.ts'
import type { Logger } from '../logger.ts'
import { DependencyHealth } from '../dependency-health.ts'
import { ConfigCache } from './config-cache.ts'
import { createRedis } from './redis.ts'
import {
  BACKOFF_STRATEGY,
  QUEUE_NAMES,
  WAKE_EVERY_MS,
  backoffDelay,
  createMaintenanceQueue,
  type IngestJobData,
  type MaintenanceJobData,
} from './queues.ts'
import { createIngestProcessor, type IngestResult } from './ingest-processor.ts'
import { runBatchJob } from './batch-jobs.ts'
import { ScheduleSync } from './schedules.ts'
import { wakeDuePeople } from './wake.ts'
import { analyzeNewTables } from '../db/statistics.ts'
import { settlesWithin } from '../timeout.ts'
import { OutboxRunner } from '../outbox/worker.ts'

/** BullMQ concurrency of the ingest worker: enough held jobs for every slot's next group. */
export const ingestJobsHeld = (transactions: number) => Math.min(256, transactions * 16)

/**
 * Job locks and stalled-job checks, from GOALPOST_JOB_LOCK_MS: a live worker
 * renews its jobs' locks every half lock, and a check every half lock takes
 * back the jobs whose lock lapsed (their worker was killed, or its event loop
 * was blocked for over half a lock), so they run again within about 1.5 locks.
 * Running a job twice is harmless: ingest and recompute are idempotent.
 */
export const lockOptions = (jobLockMs: number) => ({ lockDuration: jobLockMs, stalledInterval: Math.max(500, Math.round(jobLockMs / 2)) })

/** One warning per job taken back, in the process that took it back. */
function warnOnStalled(worker: Worker, queue: string, log: Logger): void {
  worker.on('stalled', (jobId) =>
    log.warn({ jobId, queue }, 'took back a job whose lock lapsed (its worker died or was blocked); it runs again'),
  )
}

export interface RunningWorkers {
  ingest: Worker<IngestJobData, IngestResult>
  maintenance: Worker<MaintenanceJobData>
  configs: ConfigCache
  close(): Promise<void>
}

/**
 * Starts the workers: ingest (persist, then evaluate the people touched), and
 * maintenance (the scheduled wake-up every WAKE_EVERY_MS, and recomputes).
 * Any number of processes may run these; BullMQ hands each job to one.
 */
export async function startWorkers(
  config: Pick<Config, 'redisUrl' | 'queuePrefix' | 'ingestConcurrency' | 'ingestGroupMessages' | 'jobLockMs'> &
    Partial<Pick<Config, 'forwardWriteKey' | 'forwardHost'>>,
  db: Knex,
  log: Logger,
  health: DependencyHealth = new DependencyHealth(log),
): Promise<RunningWorkers> {
  const connection = createRedis(config.redisUrl, 'worker', config.queuePrefix)
  health.watchRedis(connection)
  // Outbound changes (docs/outbound.md): the drain is woken after each commit that wrote outbox rows.
  const outbox = new OutboxRunner(config, db, log, connection)
  const configs = new ConfigCache(db, undefined, outbox.cacheOptions())
  const ingest = new Worker<IngestJobData, IngestResult>(
    QUEUE_NAMES.ingest,
    createIngestProcessor({
      db,
      log,
      context: (opts) => {
        if (opts?.fresh) configs.invalidate()
        return configs.get()
      },
    }, { concurrency: config.ingestConcurrency, maxGroupMessages: config.ingestGroupMessages }),
    {
      connection,
      prefix: config.queuePrefix,
      // Jobs held at once: those waiting for a transaction slot are persisted
      // together (group commit), so holding more than the slots lets groups form.
      concurrency: ingestJobsHeld(config.ingestConcurrency),
      // Re-running a batch is harmless (idempotent), so a worker killed
      // mid-job never turns the job into a failure.
      maxStalledCount: 20,
      ...lockOptions(config.jobLockMs),
      settings: {
        backoffStrategy: (attemptsMade, type) => (type === BACKOFF_STRATEGY ? backoffDelay(attemptsMade) : 1_000),
      },
    },
  )
  // Before any await: a new worker's first stalled check runs at once.
  warnOnStalled(ingest, 'ingest', log)
  // A job failing because Postgres or Redis is away is retried (backoff) and
  // logged once per outage (DependencyHealth), not once per job with a stack.
  ingest.on('failed', (job, err) => {
    if (!health.absorb(err, 'postgres'))
      log.error({ err, jobId: job?.id, attemptsMade: job?.attemptsMade }, 'ingest job failed; it will be retried unless attempts are used up')
  })
  ingest.on('completed', () => health.up('postgres'))
  ingest.on('error', (err) => {
    if (!health.absorb(err, 'redis')) log.error({ err }, 'ingest worker error')
  })

  const maintenanceQueue = createMaintenanceQueue(connection, config.queuePrefix)
  maintenanceQueue.on('error', (err) => {
    if (!health.absorb(err, 'redis')) log.error({ err }, 'maintenance queue error')
  })
  // Idempotent: every worker process upserts the same scheduler.
  await maintenanceQueue.upsertJobScheduler('wake', { every: WAKE_EVERY_MS }, { name: 'wake', data: { kind: 'wake' } })
  // The configuration's schedules: now, and whenever a new revision is seen (src/jobs/schedules.ts).
  const schedules = new ScheduleSync(db, maintenanceQueue, connection, config.queuePrefix, log, health)
  await schedules.sync()
  configs.onRevision(() => void schedules.sync())
  const maintenance = new Worker<MaintenanceJobData>(
    QUEUE_NAMES.maintenance,
    async (job) => {
      // A recompute or retention run reads the revision in force now: one queued (or scheduled) just after a save must not run on the cache's older one.
      if (job.data.kind !== 'wake') configs.invalidate()
      const ctx = await configs.get()
      if (job.data.kind === 'wake') {
        // A fresh database gets planner statistics within seconds, not at autovacuum's first round.
        const analyzed = await analyzeNewTables(db)
        if (analyzed.length > 0) log.info({ tables: analyzed }, 'analyzed tables that had no statistics yet')
        return { woken: await wakeDuePeople(db, ctx, Date.now()), analyzed }
      }
      return runBatchJob(db, ctx, job, job.data)
    },
    // Two at a time, so a long recompute does not hold up the wake-ups. A
    // recompute taken back more than 5 times (BullMQ's default: once) fails.
    { connection, prefix: config.queuePrefix, concurrency: 2, maxStalledCount: 5, ...lockOptions(config.jobLockMs) },
  )
  warnOnStalled(maintenance, 'maintenance', log)
  maintenance.on('failed', (job, err) => {
    if (!health.absorb(err, 'postgres')) log.error({ err, jobId: job?.id, name: job?.name }, 'maintenance job failed')
  })
  maintenance.on('completed', () => health.up('postgres'))
  maintenance.on('error', (err) => {
    if (!health.absorb(err, 'redis')) log.error({ err }, 'maintenance worker error')
  })
  await outbox.start(configs, connection, health)
  return {
    ingest,
    maintenance,
    configs,
    /**
     * Lets active jobs finish, for at most a job lock's duration (after that
     * another worker would run them again anyway). BullMQ's close can wait
     * forever when it starts while a connection is reconnecting (a Redis
     * blip just before SIGTERM), so past the deadline the workers are closed
     * by force and left behind if even that hangs: an unfinished job is run
     * again once its lock expires, which changes nothing already stored.
     */
    async close() {
      schedules.stop()
      if (!(await settlesWithin(Promise.all([ingest.close(), maintenance.close(), outbox.close()]), config.jobLockMs))) {
        log.warn({ waitedMs: config.jobLockMs }, 'workers did not stop in time (Redis reconnecting?); closing them by force')
        if (!(await settlesWithin(Promise.all([ingest.close(true), maintenance.close(true)]), 5_000)))
          log.warn('workers still not closed; leaving them: their jobs run again when their locks expire')
      }
      await settlesWithin(maintenanceQueue.close(), 5_000)
      connection.disconnect()
    },
  }
}
