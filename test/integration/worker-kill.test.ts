import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { QueueEvents, type Queue } from 'bullmq'
import type { Redis } from 'ioredis'
import { createIngestQueue, type IngestJobData } from '../../src/jobs/queues.ts'
import { persistBatch } from '../../src/jobs/persist-batch.ts'
import { emptyContext } from '../../src/jobs/evaluate.ts'
import { createRedis, waitUntilReady } from '../../src/jobs/redis.ts'
import { BUILT_IN_DELIVERY_EVENTS } from '../../src/segment/delivery-events.ts'
import type { IngestMessage } from '../../src/segment/normalise.ts'
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts'
import { REDIS_URL } from '../helpers/env.ts'
import { testEnv } from '../helpers/goalpost.ts'
import { killAllGoalposts, spawnGoalpost, type GoalpostProcess } from '../helpers/goalpost-process.ts'
import { deleteQueuePrefix, testQueuePrefix } from '../helpers/redis.ts'
import { waitFor } from '../helpers/wait.ts'

// A worker killed mid-job (SIGKILL: no drain, open transactions cut) loses
// nothing and doubles nothing: its jobs are picked up again once their lock
// expires, and re-running a batch is idempotent. The end state must equal a
// single clean run of the same batches (R3).

const BATCHES = 100
const PER_BATCH = 100
const TOTAL = BATCHES * PER_BATCH

let database: TestDatabase // the killed-and-restarted run
let reference: TestDatabase // a clean, sequential run of the same batches
let prefix: string
let redis: Redis
let queue: Queue<IngestJobData>
let queueEvents: QueueEvents
let eventsConnection: Redis

beforeAll(async () => {
  ;[database, reference] = await Promise.all([createTestDatabase(), createTestDatabase()])
  prefix = testQueuePrefix()
  redis = createRedis(REDIS_URL, 'producer')
  await waitUntilReady(redis)
  queue = createIngestQueue(redis, prefix)
  eventsConnection = createRedis(REDIS_URL, 'worker')
  queueEvents = new QueueEvents(queue.name, { connection: eventsConnection, prefix })
  await queueEvents.waitUntilReady()
})
afterAll(async () => {
  await killAllGoalposts() // only workers this file started
  await queueEvents?.close()
  eventsConnection?.disconnect()
  await queue?.close()
  redis?.disconnect()
  if (prefix) await deleteQueuePrefix(prefix)
  await database?.drop()
  await reference?.drop()
})

/** `goalpost worker` as a child process, exactly as an operator runs it. */
function startWorker(): GoalpostProcess {
  return spawnGoalpost('worker', testEnv(database, prefix, { GOALPOST_JOB_LOCK_MS: '2000', GOALPOST_INGEST_CONCURRENCY: '4' }))
}

// ---- the workload -------------------------------------------------------------
// 400 users, 200 anonymous visitors (visitor k is identified as user k), and
// every message with its own processing time, so the fold order (R2) does not
// depend on which batch was persisted first.

const at = (g: number) => new Date(Date.UTC(2026, 0, 1) + g * 1000).toISOString()

function messageAt(g: number): IngestMessage {
  const kind = g % 10
  const i = Math.floor(g / 10)
  const user = `u${i % 400}`
  const anon = `a${i % 200}`
  const base: IngestMessage = {
    messageId: `kill-${g}`,
    type: 'track',
    name: null,
    userId: user,
    anonymousId: null,
    properties: {},
    meta: null,
    context: null,
    receivedAt: at(g),
    timestamp: null,
  }
  const owner = `u${(i * 7) % 400}`
  switch (kind) {
    case 0:
      return { ...base, type: 'identify', properties: { plan: i % 3 === 0 ? null : `p${i}`, [`k${i % 5}`]: i } }
    case 1:
      return { ...base, name: 'Email Sent', properties: { delivery_id: `d-${user}-${i % 3}`, campaign_id: `c${i % 5}` } }
    case 2:
      return { ...base, userId: owner, name: 'Email Opened', properties: { delivery_id: `d-${owner}-${i % 3}` } }
    case 3:
      return { ...base, userId: null, anonymousId: anon, name: 'Product Viewed', properties: { g } }
    case 4:
      return { ...base, userId: null, anonymousId: anon, type: 'identify', properties: { anon_seen: g } }
    case 5:
      return { ...base, userId: `u${i % 200}`, anonymousId: anon, type: 'identify', properties: { linked: true } }
    case 6:
      return { ...base, userId: null, anonymousId: anon, name: 'Email Delivered', properties: { delivery_id: `d-${anon}` } }
    case 7:
      return { ...base, name: i % 50 === 0 ? 'Email Bounced' : 'Email Link Clicked', properties: { delivery_id: `d-${user}-${i % 3}` } }
    case 8:
      return { ...base, type: 'page', name: 'Page Viewed', properties: { name: 'Home' } }
    default:
      return { ...base, name: 'Order Completed', properties: { total: i } }
  }
}

const batches: IngestMessage[][] = Array.from({ length: BATCHES }, (_, b) =>
  Array.from({ length: PER_BATCH }, (_, j) => messageAt(b * PER_BATCH + j)),
)

// ---- what is compared ---------------------------------------------------------

async function state(db: TestDatabase['db']) {
  const iso = (d: Date | null) => (d ? d.toISOString() : null)
  const events = await db('events').select('message_id', 'person_id', 'type', 'name', 'properties', 'received_at').orderBy('message_id')
  const people = await db('people').select('person_id', 'attributes', 'traits_received_at').orderBy('person_id')
  const deliveries = await db('deliveries').orderBy('delivery_id')
  const links = await db('identity_links').select('anonymous_id', 'person_id').orderBy('anonymous_id')
  return {
    events: events.map((e) => ({ ...e, received_at: iso(e.received_at) })),
    people: people.map((p) => ({ ...p, traits_received_at: iso(p.traits_received_at) })),
    deliveries: deliveries.map(({ updated_at: _, ...d }) =>
      Object.fromEntries(Object.entries(d).map(([k, v]) => [k, v instanceof Date ? v.toISOString() : v])),
    ),
    links,
    rejected: await db('rejected_messages').count<{ count: string }[]>('* as count').then((r) => Number(r[0].count)),
  }
}

const countEvents = async () => Number((await database.db('events').count<{ count: string }[]>('* as count'))[0].count)

describe('a worker killed mid-job', () => {
  it('R3: SIGKILL while jobs are active loses nothing and doubles nothing; the result equals a clean run', async () => {
    let stalled = 0
    queueEvents.on('stalled', () => stalled++)
    await queue.addBulk(batches.map((messages) => ({ name: 'batch', data: { source: 'plugin' as const, messages } })))

    const first = startWorker()
    // Kill while the log is between 10% and 90% written and one of the
    // worker's transactions is open: the kill lands mid-job.
    const seen = await waitFor(
      async () => {
        const n = await countEvents()
        if (n < TOTAL * 0.1 || n > TOTAL * 0.9) return 0
        const { rows } = await database.db.raw(
          `SELECT count(*)::int AS open FROM pg_stat_activity
            WHERE datname = current_database() AND application_name = 'goalpost' AND xact_start IS NOT NULL`,
        )
        return rows[0].open > 0 ? n : 0
      },
      { what: 'the first worker to be part-way through', timeoutMs: 40_000, intervalMs: 25 },
    )
    first.child.kill('SIGKILL')
    expect(await first.exited()).toEqual({ code: null, signal: 'SIGKILL' })
    const atKill = await countEvents()
    expect(atKill).toBeGreaterThanOrEqual(seen)
    expect(atKill).toBeLessThan(TOTAL)
    // The dead worker left jobs active, holding locks it will never renew.
    expect(await queue.getActiveCount()).toBeGreaterThan(0)

    const second = startWorker()
    await Promise.all([
      waitFor(
        async () => {
          const c = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'waiting-children')
          return Object.values(c).every((n) => n === 0)
        },
        { what: 'the restarted worker to drain the queue', timeoutMs: 90_000, intervalMs: 200 },
      ).catch((err) => {
        throw new Error(`${(err as Error).message}\nworker output:\n${second.output.slice(-10).join('\n')}`)
      }),
      // Meanwhile, the clean reference run: the same batches, in order, one at a time.
      (async () => {
        for (const messages of batches) await persistBatch(reference.db, 'plugin', messages, emptyContext())
      })(),
    ])
    second.child.kill('SIGTERM')
    expect(await second.exited()).toEqual({ code: 0, signal: null })

    expect(await queue.getJobCounts('failed', 'completed')).toEqual({ failed: 0, completed: 0 }) // completed jobs are removed
    expect(stalled).toBeGreaterThan(0) // the killed jobs were taken up again
    // …and the worker that took them back said so, once per job.
    expect(second.output.filter((line) => line.includes('took back a job whose lock lapsed')).length).toBe(stalled)

    const [got, want] = await Promise.all([state(database.db), state(reference.db)])
    expect(got.events).toHaveLength(TOTAL)
    expect(new Set(got.events.map((e) => e.message_id)).size).toBe(TOTAL)
    expect(got.rejected).toBe(0)
    expect(got.events).toEqual(want.events)
    expect(got.links).toEqual(want.links)
    expect(got.people).toEqual(want.people)
    expect(got.deliveries).toEqual(want.deliveries)
    // Sanity of the workload itself: merges happened and deliveries exist.
    expect(want.links).toHaveLength(200)
    expect(want.people.some((p) => p.person_id.startsWith('a'))).toBe(false)
    expect(want.deliveries.length).toBeGreaterThan(600)
  }, 120_000)
})
