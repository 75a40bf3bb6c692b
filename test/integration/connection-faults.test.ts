import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { QueueEvents, type Queue } from 'bullmq'
import type { Redis } from 'ioredis'
import { createRedis } from '../../src/jobs/redis.ts'
import pg from 'pg'
import type { IngestJobData } from '../../src/jobs/queues.ts'
import type { IngestMessage } from '../../src/segment/normalise.ts'
import { PG_SERVER_URL, REDIS_URL } from '../helpers/env.ts'
import type { TestGoalpost } from '../helpers/goalpost.ts'
import { ingestSettled, startWithIngestQueue } from '../helpers/ingest-queue.ts'

// Postgres connections cut while the worker persists groups (a failover, a
// restart, an idle-session timeout): every open transaction is rolled back,
// the group's jobs are retried, and in the end nothing is lost and nothing
// doubled. Only this file's database's backends are terminated.

const BATCHES = 60
const PER_BATCH = 100

let gp: TestGoalpost
let queue: Queue<IngestJobData>
let stop: (() => Promise<void>) | undefined
let admin: pg.Client
let eventsConnection: Redis
let queueEvents: QueueEvents
let retried = 0

beforeAll(async () => {
  ;({ gp, queue, stop } = await startWithIngestQueue())
  admin = new pg.Client({ connectionString: `${PG_SERVER_URL}/postgres`, application_name: 'goalpost-test-admin' })
  await admin.connect()
  eventsConnection = createRedis(REDIS_URL, 'worker')
  queueEvents = new QueueEvents(queue.name, { connection: eventsConnection, prefix: gp.config.queuePrefix })
  // A job that fails with attempts left is delayed by its backoff, then retried.
  queueEvents.on('delayed', () => retried++)
  await queueEvents.waitUntilReady()
})
afterAll(async () => {
  await queueEvents?.close()
  eventsConnection?.disconnect()
  await admin?.end()
  await stop?.()
})

function batch(n: number): IngestMessage[] {
  return Array.from({ length: PER_BATCH }, (_, i) => {
    const user = `cf-u${(n * 7 + i) % 400}`
    const identify = i % 10 === 0
    return {
      messageId: `cf-${n}-${i}`,
      type: identify ? ('identify' as const) : ('track' as const),
      name: identify ? null : i % 10 === 1 ? 'Email Sent' : 'Product Viewed',
      userId: user,
      anonymousId: identify && i % 20 === 0 ? `cf-anon-${n}-${i}` : null,
      properties: identify ? { plan: `p${n}` } : i % 10 === 1 ? { delivery_id: `cf-d-${n}-${i}` } : { n, i },
      meta: null,
      context: null,
      receivedAt: new Date(Date.UTC(2026, 0, 1, 0, n, i % 60)).toISOString(),
      timestamp: null,
    }
  })
}

describe('Postgres connections cut mid-ingest', () => {
  it('R2, R3: every message is stored exactly once and no job fails, though the worker keeps losing its connections', async () => {
    const batches = Array.from({ length: BATCHES }, (_, n) => batch(n))
    let terminated = 0
    await queue.addBulk(batches.map((messages) => ({ name: 'batch', data: { source: 'plugin' as const, messages } })))
    // Eight cuts while the worker is busy: each rolls back whatever transactions are open.
    for (let cut = 0; cut < 8; cut++) {
      await new Promise((r) => setTimeout(r, 250))
      const { rows } = await admin.query(
        `SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity
          WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend'`,
        [gp.database.name],
      )
      terminated += rows[0].n
    }
    expect(terminated).toBeGreaterThan(0)
    // The cuts hit open transactions: jobs failed and were run again.
    await new Promise((r) => setTimeout(r, 200))
    expect(retried).toBeGreaterThan(0)
    // Retried jobs back off (500 ms, doubling): give them time.
    await ingestSettled(queue, { timeoutMs: 90_000 })

    const db = gp.database.db
    const rows = await db('events').select('message_id')
    expect(rows).toHaveLength(BATCHES * PER_BATCH)
    expect(new Set(rows.map((r) => r.message_id)).size).toBe(BATCHES * PER_BATCH)
    expect(await db('rejected_messages').count<{ n: string }[]>({ n: '*' }).then((r) => Number(r[0].n))).toBe(0)
    const deliveries = await db('deliveries').whereNotNull('sent_at').count<{ n: string }[]>({ n: '*' })
    expect(Number(deliveries[0].n)).toBe(BATCHES * (PER_BATCH / 10))
    // Traits: each person's attributes are those of their last identify in processing order (R3).
    const people = await db('people').whereNotNull('traits_received_at').select('person_id', 'attributes')
    expect(people.length).toBeGreaterThan(0)
    const expected = new Map<string, string>()
    for (const m of batches.flat().filter((m) => m.type === 'identify').sort((a, b) => a.receivedAt.localeCompare(b.receivedAt)))
      expected.set(m.userId!, m.properties.plan as string)
    for (const p of people) expect(p.attributes.plan).toBe(expected.get(p.person_id))
  }, 120_000)
})
