/**
 * goalpost (HTTP and workers) with a producer's own handle on its ingest
 * queue, for tests that queue batches as the plugin does and wait for them.
 */
import { expect } from 'vitest'
import type { Queue } from 'bullmq'
import type { Redis } from 'ioredis'
import { createIngestQueue, type IngestJobData } from '../../src/jobs/queues.ts'
import { createRedis, waitUntilReady } from '../../src/jobs/redis.ts'
import { REDIS_URL } from './env.ts'
import { startGoalpost, type TestGoalpost } from './goalpost.ts'
import { waitFor } from './wait.ts'

export interface WithIngestQueue {
  gp: TestGoalpost
  queue: Queue<IngestJobData>
  /** Closes the queue and its connection, then goalpost. */
  stop(): Promise<void>
}

export async function startWithIngestQueue(extraEnv: Record<string, string> = {}): Promise<WithIngestQueue> {
  const gp = await startGoalpost({ http: true, workers: true }, extraEnv)
  let redis: Redis | undefined
  let queue: Queue<IngestJobData> | undefined
  const stop = async () => {
    await queue?.close()
    redis?.disconnect()
    await gp.stop()
  }
  try {
    redis = createRedis(REDIS_URL, 'producer')
    await waitUntilReady(redis)
    queue = createIngestQueue(redis, gp.config.queuePrefix)
  } catch (err) {
    // The caller gets no handle to stop with, so nothing may be left running.
    await stop()
    throw err
  }
  return { gp, queue, stop }
}

/** Waits until no ingest job is waiting, active or delayed, and checks none failed. */
export async function ingestSettled(queue: Queue<IngestJobData>, { timeoutMs = 20_000 } = {}): Promise<void> {
  await waitFor(
    async () => {
      const c = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'waiting-children')
      return Object.values(c).every((n) => n === 0)
    },
    { what: 'the ingest queue to drain', timeoutMs },
  )
  expect(await queue.getJobCounts('failed')).toEqual({ failed: 0 })
}
