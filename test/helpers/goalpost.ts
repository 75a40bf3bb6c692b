import { loadConfig, type Config } from '../../src/config.ts'
import { run, type Running } from '../../src/cli/runtime.ts'
import { createTestDatabase, type TestDatabase } from './db.ts'
import { REDIS_URL } from './env.ts'
import { createMaintenanceQueue } from '../../src/jobs/queues.ts'
import { createRedis } from '../../src/jobs/redis.ts'
import { deleteQueuePrefix, testQueuePrefix } from './redis.ts'

export const WRITE_KEY = 'test-write-key'
export const WEBHOOK_SECRET = 'test-webhook-secret'
export const ADMIN_TOKEN = 'test-admin-token'

export interface TestGoalpost {
  url: string
  config: Config
  database: TestDatabase
  running: Running
  /** `Authorization` header value for the write key. */
  basicAuth: string
  stop(): Promise<void>
}

/** The environment a test goalpost runs with: its own database and queue prefix. */
export function testEnv(database: TestDatabase, queuePrefix: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    NODE_ENV: 'test',
    DATABASE_URL: database.url,
    REDIS_URL,
    PORT: '0',
    HOST: '127.0.0.1',
    GOALPOST_WRITE_KEYS: WRITE_KEY,
    GOALPOST_WEBHOOK_SECRET: WEBHOOK_SECRET,
    GOALPOST_ADMIN_TOKEN: ADMIN_TOKEN,
    GOALPOST_QUEUE_PREFIX: queuePrefix,
    GOALPOST_LOG_LEVEL: 'warn',
    ...extra,
  }
}

/**
 * goalpost in this process (HTTP server and/or workers) on a fresh database
 * and queue prefix; stop() closes it and removes both.
 */
export async function startGoalpost(parts: { http?: boolean; workers?: boolean } = {}, extraEnv: Record<string, string> = {}): Promise<TestGoalpost> {
  const database = await createTestDatabase()
  const queuePrefix = testQueuePrefix()
  const config = loadConfig(testEnv(database, queuePrefix, extraEnv))
  const running = await run({ migrate: false, http: parts.http ?? true, workers: parts.workers ?? true }, config)
  return {
    url: running.url ?? '',
    config,
    database,
    running,
    basicAuth: `Basic ${Buffer.from(`${WRITE_KEY}:`).toString('base64')}`,
    async stop() {
      await running.close()
      await deleteQueuePrefix(queuePrefix)
      await database.drop()
    },
  }
}

/**
 * Removes the scheduled wake-up (which re-evaluates people on its own) from a
 * test goalpost's maintenance queue, for tests that compare derived rows;
 * recompute and other maintenance jobs still run.
 */
export async function stopWakeUps(gp: TestGoalpost): Promise<void> {
  const redis = createRedis(REDIS_URL, 'worker')
  const maintenance = createMaintenanceQueue(redis, gp.config.queuePrefix)
  await maintenance.removeJobScheduler('wake')
  await maintenance.close()
  redis.disconnect()
}
