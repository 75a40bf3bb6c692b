import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Redis } from 'ioredis'
import { QueueUnavailableError } from '../../src/errors.ts'
import { createIngestQueue, IngestProducer, type IngestJobData } from '../../src/jobs/queues.ts'
import { createRedis, waitUntilReady } from '../../src/jobs/redis.ts'
import type { IngestMessage } from '../../src/segment/normalise.ts'
import { REDIS_URL } from '../helpers/env.ts'
import { deleteQueuePrefix, testQueuePrefix } from '../helpers/redis.ts'

// The HTTP side's group commit: batches accepted together share one job; no
// batch is answered before Redis has it. No worker runs: the jobs stay queued.

const prefix = testQueuePrefix()
let connection: Redis

beforeAll(async () => {
  connection = createRedis(REDIS_URL, 'producer')
  await waitUntilReady(connection)
})
afterAll(async () => {
  connection?.disconnect()
  await deleteQueuePrefix(prefix)
})

let n = 0
const message = (userId: string): IngestMessage => ({
  messageId: `p-${++n}`,
  type: 'track',
  name: 'Product Viewed',
  userId,
  anonymousId: null,
  properties: {},
  meta: null,
  context: null,
  receivedAt: new Date().toISOString(),
  timestamp: null,
})

const jobsOf = async (queue: ReturnType<typeof createIngestQueue>) =>
  (await queue.getJobs(['waiting'])).map((j) => j.data as IngestJobData).sort((a, b) => a.messages[0].messageId.localeCompare(b.messages[0].messageId, 'en', { numeric: true }))

describe('IngestProducer (group commit of accepted batches)', () => {
  it('batches accepted together share one job; every message is queued once, in order', async () => {
    const queue = createIngestQueue(connection, `${prefix}a`)
    try {
      await queue.waitUntilReady()
      const producer = new IngestProducer(queue, { maxInFlight: 1 })
      const batches = Array.from({ length: 20 }, (_, i) => [message(`u${i}`), message(`u${i}`)])
      await Promise.all(batches.map((messages) => producer.enqueue({ source: 'api', messages }, JSON.stringify(messages).length)))
      const jobs = await jobsOf(queue)
      expect(jobs).toHaveLength(1)
      expect(jobs.flatMap((j) => j.messages.map((m) => m.messageId))).toEqual(batches.flat().map((m) => m.messageId))
      for (const j of jobs) expect(j.source).toBe('api')
    } finally {
      await queue.obliterate({ force: true })
      await queue.close()
    }
  })

  it('never mixes sources in one job, and keeps a job under maxMessages', async () => {
    const queue = createIngestQueue(connection, `${prefix}b`)
    try {
      await queue.waitUntilReady()
      const producer = new IngestProducer(queue, { maxInFlight: 1, maxMessages: 5 })
      await Promise.all([
        ...Array.from({ length: 6 }, (_, i) => producer.enqueue({ source: 'api', messages: [message(`a${i}`), message(`a${i}`)] }, 100)),
        ...Array.from({ length: 3 }, (_, i) => producer.enqueue({ source: 'webhook', messages: [message(`w${i}`)] }, 100)),
      ])
      const jobs = await queue.getJobs(['waiting'])
      for (const j of jobs) {
        expect(j.data.messages.length).toBeLessThanOrEqual(5)
        const sources = new Set(j.data.messages.map((m) => (m.userId!.startsWith('a') ? 'api' : 'webhook')))
        expect([...sources]).toEqual([j.data.source])
      }
      expect(jobs.reduce((s, j) => s + j.data.messages.length, 0)).toBe(15)
    } finally {
      await queue.obliterate({ force: true })
      await queue.close()
    }
  })

  it('keeps a job under maxBytes, so large messages make small jobs', async () => {
    const queue = createIngestQueue(connection, `${prefix}e`)
    try {
      await queue.waitUntilReady()
      const producer = new IngestProducer(queue, { maxInFlight: 1, maxBytes: 100_000 })
      // Ten batches of 30 KB: three fit in a job, never four.
      await Promise.all(Array.from({ length: 10 }, (_, i) => producer.enqueue({ source: 'api', messages: [message(`b${i}`)] }, 30_000)))
      const jobs = await queue.getJobs(['waiting'])
      expect(jobs.map((j) => j.data.messages.length).sort()).toEqual([1, 3, 3, 3])
    } finally {
      await queue.obliterate({ force: true })
      await queue.close()
    }
  })

  it('rejects with QueueUnavailableError when Redis does not take the job in time (the request gets a 503)', async () => {
    // A connection to a port nothing listens on, that queues commands while
    // offline: the add hangs, as it does when Redis stops answering.
    const dead = createRedis('redis://127.0.0.1:1', 'worker')
    const queue = createIngestQueue(dead, `${prefix}c`)
    queue.on('error', () => {})
    try {
      const producer = new IngestProducer(queue, { timeoutMs: 300 })
      const started = Date.now()
      await expect(producer.enqueue({ source: 'api', messages: [message('x')] }, 100)).rejects.toBeInstanceOf(QueueUnavailableError)
      expect(Date.now() - started).toBeGreaterThanOrEqual(290)
    } finally {
      await queue.close().catch(() => {})
      dead.disconnect()
    }
  })

  it("keeps BullMQ's event stream short, so Redis memory does not grow with the number of jobs", async () => {
    const queue = createIngestQueue(connection, `${prefix}d`)
    try {
      await queue.waitUntilReady()
      for (let i = 0; i < 6; i++)
        await queue.addBulk(Array.from({ length: 500 }, () => ({ name: 'batch', data: { source: 'api' as const, messages: [message('s')] } })))
      expect(await queue.count()).toBe(3000)
      // Trimming is approximate (whole stream nodes): about 1,000, far from 3,000 "added" events and more.
      expect(await connection.xlen(`${prefix}d:{ingest}:events`)).toBeLessThan(1_500)
    } finally {
      await queue.obliterate({ force: true })
      await queue.close()
    }
  })
})
