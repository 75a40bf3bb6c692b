import type { FastifyInstance } from 'fastify'
import { loadConfig, type Config } from '../config.ts'
import { createLogger, type Logger } from '../logger.ts'
import { DependencyHealth } from '../dependency-health.ts'
import { createDb } from '../db/knex.ts'
import { migrateToLatest } from '../db/migrate.ts'
import { buildServer } from '../http/server.ts'
import { createIngestQueue, createMaintenanceQueue } from '../jobs/queues.ts'
import { createRedis, waitUntilReady } from '../jobs/redis.ts'
import { startWorkers } from '../jobs/workers.ts'
import { applyConfigFile } from './apply.ts'

export interface Running {
  close(): Promise<void>
  server?: FastifyInstance
  /** The HTTP server's base URL, when it runs. */
  url?: string
}

type Closer = () => Promise<void>

/** What `serve`, `worker` and `start` run; each part can run in its own process to scale out. */
export async function run(parts: { migrate: boolean; http: boolean; workers: boolean }, config: Config = loadConfig()): Promise<Running> {
  const log = createLogger(config.logLevel)
  if (parts.migrate) {
    const { created, ran } = await migrateToLatest(config.databaseUrl)
    if (created) log.info('created the database')
    if (ran.length > 0) log.info({ migrations: ran }, 'ran migrations')
  }
  const closers: Closer[] = []
  // One per process: an outage is logged once, whichever part runs into it.
  const health = new DependencyHealth(log)
  const db = createDb(config.databaseUrl, { poolMax: Math.max(4, config.ingestConcurrency + 2), health })
  closers.push(() => db.destroy())
  // GOALPOST_CONFIG is applied by the processes that migrate or serve (start,
  // serve), before anything runs on it; worker-only processes read the
  // configuration others saved. Invalid: the errors are thrown, listed.
  if (config.configFile && (parts.migrate || parts.http)) {
    const file = config.configFile
    const result = await applyConfigFile(db, file, { now: new Date(), source: `startup:${file}` }).catch(async (err) => {
      await db.destroy()
      throw err
    })
    log.info({ file, revision: result.revision, changes: result.changes }, result.changed ? 'applied GOALPOST_CONFIG' : 'GOALPOST_CONFIG: no changes')
  }
  let server: FastifyInstance | undefined
  let url: string | undefined
  if (parts.workers) {
    const workers = await startWorkers(config, db, log, health)
    closers.unshift(() => workers.close())
    log.info({ concurrency: config.ingestConcurrency }, 'workers started')
  }
  if (parts.http) {
    const redis = createRedis(config.redisUrl, 'producer', config.queuePrefix)
    health.watchRedis(redis)
    await waitUntilReady(redis)
    const queue = createIngestQueue(redis, config.queuePrefix)
    const maintenance = createMaintenanceQueue(redis, config.queuePrefix)
    for (const q of [queue, maintenance])
      q.on('error', (err) => {
        if (!health.absorb(err, 'redis')) log.warn({ err, queue: q.name }, 'queue connection error')
      })
    server = await buildServer({ config, queue, maintenance, db, redis, log, health })
    closers.unshift(async () => {
      await server!.close()
      await queue.close()
      await maintenance.close()
      redis.disconnect()
    })
    url = await server.listen({ port: config.port, host: config.host })
  }
  return {
    server,
    url,
    async close() {
      for (const close of closers) await close().catch((err) => log.error({ err }, 'error while shutting down'))
    },
  }
}

/** Runs until SIGINT/SIGTERM, then drains: the HTTP server stops taking requests, workers finish their jobs. */
export async function runUntilSignal(parts: Parameters<typeof run>[0]): Promise<void> {
  const config = loadConfig()
  const log: Logger = createLogger(config.logLevel)
  process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled promise rejection'))
  const running = await run(parts, config)
  let stopping = false
  const stop = (signal: string) => {
    if (stopping) return
    stopping = true
    log.info({ signal }, 'shutting down')
    running.close().then(
      () => process.exit(0),
      () => process.exit(1),
    )
  }
  process.once('SIGINT', () => stop('SIGINT'))
  process.once('SIGTERM', () => stop('SIGTERM'))
}
