import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { QueueEvents, type Queue } from 'bullmq'
import type { IngestResult } from '../../src/jobs/ingest-processor.ts'
import type { IngestJobData } from '../../src/jobs/queues.ts'
import { createRedis } from '../../src/jobs/redis.ts'
import type { IngestMessage } from '../../src/segment/normalise.ts'
import { REDIS_URL } from '../helpers/env.ts'
import type { TestGoalpost } from '../helpers/goalpost.ts'
import { ingestSettled, startWithIngestQueue } from '../helpers/ingest-queue.ts'
import { waitFor } from '../helpers/wait.ts'

// Idempotency of ingestion (CONTRACT.md HTTP: "A messageId seen before is
// accepted and ignored"), under HTTP retries, BullMQ re-runs and concurrency.

let gp: TestGoalpost
let queue: Queue<IngestJobData>
let stop: (() => Promise<void>) | undefined

beforeAll(async () => {
  ;({ gp, queue, stop } = await startWithIngestQueue({ GOALPOST_INGEST_CONCURRENCY: '4' }))
})
afterAll(async () => {
  await stop?.()
})

const db = () => gp.database.db

async function postBatch(batch: unknown[]): Promise<void> {
  const res = await fetch(`${gp.url}/v1/batch`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: gp.basicAuth },
    body: JSON.stringify({ batch }),
  })
  expect(res.status).toBe(200)
  expect(await res.json()).toEqual({ success: true })
}

const settled = () => ingestSettled(queue)

async function snapshot(people: string[], deliveries: string[]) {
  return {
    people: await db()('people').whereIn('person_id', people).orderBy('person_id'),
    deliveries: await db()('deliveries').whereIn('delivery_id', deliveries).orderBy('delivery_id'),
  }
}

let n = 0
const uid = (p: string) => `${p}-${++n}-${Math.random().toString(36).slice(2, 7)}`

/** A Segment batch for one user: traits, plain events and a delivery's lifecycle. */
function userBatch(user: string, delivery: string) {
  return [
    { type: 'identify', userId: user, messageId: `${user}-i1`, traits: { plan: 'free', email: `${user}@example.com` } },
    { type: 'track', userId: user, event: 'Product Viewed', messageId: `${user}-t1`, properties: { sku: 'a' } },
    { type: 'track', userId: user, event: 'Email Sent', messageId: `${user}-d1`, properties: { delivery_id: delivery, campaign_id: 'c1' } },
    { type: 'track', userId: user, event: 'Email Opened', messageId: `${user}-d2`, properties: { delivery_id: delivery, campaign_id: 'c1' } },
    { type: 'page', userId: user, name: 'Home', messageId: `${user}-p1` },
  ]
}

describe('idempotent ingestion (CONTRACT: a messageId seen before is ignored)', () => {
  it('R2: the same /v1/batch sent three times leaves one row per messageId, traits applied once, deliveries unchanged', async () => {
    const user = uid('u')
    const delivery = uid('d')
    const batch = userBatch(user, delivery)
    await postBatch(batch)
    await settled()
    // A later identify and a bounce: re-applying the first batch would undo the plan change.
    await postBatch([
      { type: 'identify', userId: user, messageId: `${user}-i2`, traits: { plan: 'pro' } },
      { type: 'track', userId: user, event: 'Email Bounced', messageId: `${user}-d3`, properties: { delivery_id: delivery } },
    ])
    await settled()
    const before = await snapshot([user], [delivery])
    expect(before.people[0].attributes).toEqual({ plan: 'pro', email: `${user}@example.com` })
    expect(before.deliveries[0].failed_at).not.toBeNull()

    await postBatch(batch)
    await postBatch(batch)
    await settled()

    const events = await db()('events').where('person_id', user).orderBy('seq')
    expect(events.map((e) => e.message_id)).toEqual([...batch.map((m) => m.messageId), `${user}-i2`, `${user}-d3`])
    // Same rows, same updated_at: the duplicates touched nothing.
    expect(await snapshot([user], [delivery])).toEqual(before)
  })

  it('R2: three copies of a batch as BullMQ jobs running concurrently store it once', async () => {
    const users = Array.from({ length: 100 }, () => uid('cu'))
    const messages: IngestMessage[] = users.flatMap((user, i) =>
      userBatch(user, `${user}-del`).map((m, j) => toIngest(m, new Date(Date.UTC(2026, 0, 1, 0, 0, i, j)).toISOString())),
    )
    const connection = createRedis(REDIS_URL, 'worker')
    const events = new QueueEvents(queue.name, { connection, prefix: gp.config.queuePrefix })
    await events.waitUntilReady()
    const log: string[] = []
    const results: IngestResult[] = []
    events.on('active', () => log.push('active'))
    events.on('completed', ({ returnvalue }) => {
      log.push('completed')
      results.push(returnvalue as unknown as IngestResult)
    })
    try {
      // Paused while adding, so the worker picks the three up together.
      await queue.pause()
      await queue.addBulk([1, 2, 3].map(() => ({ name: 'batch', data: { source: 'plugin' as const, messages } })))
      await queue.resume()
      await settled()
      await waitFor(() => log.filter((e) => e === 'completed').length === 3, { what: 'three completed events' })
    } finally {
      await events.close()
      connection.disconnect()
    }
    // The jobs overlapped: a second one became active before the first completed.
    expect(log.indexOf('completed')).toBeGreaterThanOrEqual(2)
    // Between them, the three jobs inserted each message and observed each lifecycle event once.
    expect(results.reduce((n, r) => n + r.inserted, 0)).toBe(messages.length)
    expect(results.reduce((n, r) => n + r.duplicates, 0)).toBe(2 * messages.length)
    expect(results.reduce((n, r) => n + r.deliveries, 0)).toBe(2 * users.length)

    const rows = await db()('events').whereIn('person_id', users).select('message_id')
    expect(rows).toHaveLength(messages.length)
    expect(new Set(rows.map((r) => r.message_id)).size).toBe(messages.length)
    const people = await db()('people').whereIn('person_id', users)
    expect(people).toHaveLength(users.length)
    for (const p of people) expect(p.attributes).toEqual({ plan: 'free', email: `${p.person_id}@example.com` })
    const deliveries = await db()('deliveries').whereIn('person_id', users)
    expect(deliveries).toHaveLength(users.length)
    for (const d of deliveries) {
      expect(d.sent_at).not.toBeNull()
      expect(d.opened_at).not.toBeNull()
    }
  })

  it('R2: a batch holding the same messageId twice stores the first copy and applies only its traits', async () => {
    const user = uid('dup')
    await postBatch([
      { type: 'identify', userId: user, messageId: `${user}-x`, traits: { plan: 'first' } },
      { type: 'track', userId: user, event: 'Signed Up', messageId: `${user}-y` },
      { type: 'identify', userId: user, messageId: `${user}-x`, traits: { plan: 'second', extra: true } },
    ])
    await settled()
    const events = await db()('events').where('person_id', user).orderBy('seq')
    expect(events.map((e) => e.message_id)).toEqual([`${user}-x`, `${user}-y`])
    expect(events[0].properties).toEqual({ plan: 'first' })
    // The person's attributes are a function of the log (R3): the stored copy's traits.
    const [person] = await db()('people').where('person_id', user)
    expect(person.attributes).toEqual({ plan: 'first' })
  })

  it('R2: a message repeated in a later batch keeps its first seq and is not applied again', async () => {
    const user = uid('across')
    const delivery = uid('d')
    await postBatch([
      { type: 'identify', userId: user, messageId: `${user}-a`, traits: { tier: 1 } },
      { type: 'track', userId: user, event: 'Email Delivered', messageId: `${user}-b`, properties: { delivery_id: delivery } },
    ])
    await settled()
    const [first] = await db()('events').where('message_id', `${user}-a`)
    await postBatch([{ type: 'identify', userId: user, messageId: `${user}-c`, traits: { tier: 2 } }])
    await settled()
    const before = await snapshot([user], [delivery])
    await postBatch([
      { type: 'track', userId: user, event: 'Email Delivered', messageId: `${user}-b`, properties: { delivery_id: delivery } },
      { type: 'identify', userId: user, messageId: `${user}-a`, traits: { tier: 1 } },
      { type: 'track', userId: user, event: 'Checkout Started', messageId: `${user}-d` },
    ])
    await settled()
    const events = await db()('events').where('person_id', user).orderBy('seq')
    expect(events.map((e) => e.message_id)).toEqual([`${user}-a`, `${user}-b`, `${user}-c`, `${user}-d`])
    expect(events[0].seq).toBe(first.seq)
    expect(events[0].received_at).toEqual(first.received_at)
    const after = await snapshot([user], [delivery])
    expect(after.people[0].attributes).toEqual({ tier: 2 })
    expect(after.deliveries).toEqual(before.deliveries)
  })
})

/** The normalised form of a simple test message, with a chosen processing time (R1). */
function toIngest(m: Record<string, unknown>, receivedAt: string): IngestMessage {
  const type = m.type as IngestMessage['type']
  return {
    messageId: m.messageId as string,
    type,
    name: type === 'track' ? (m.event as string) : type === 'page' ? 'Page Viewed' : null,
    userId: (m.userId as string) ?? null,
    anonymousId: (m.anonymousId as string) ?? null,
    properties:
      type === 'identify'
        ? (m.traits as Record<string, unknown>)
        : type === 'page'
          ? { name: m.name }
          : ((m.properties as Record<string, unknown>) ?? {}),
    meta: null,
    context: null,
    receivedAt,
    timestamp: null,
  }
}
