import { createHmac } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { QueueEvents, type Queue } from 'bullmq'
import type { Redis } from 'ioredis'
import type { IngestJobData } from '../../src/jobs/queues.ts'
import type { IngestResult } from '../../src/jobs/ingest-processor.ts'
import { createRedis } from '../../src/jobs/redis.ts'
import type { IngestMessage } from '../../src/segment/normalise.ts'
import { REDIS_URL } from '../helpers/env.ts'
import { WEBHOOK_SECRET, type TestGoalpost } from '../helpers/goalpost.ts'
import { ingestSettled, startWithIngestQueue } from '../helpers/ingest-queue.ts'

// What the ingest worker persists: traits (R3), delivery lifecycles (R4, R5,
// R7) and messages Postgres refuses.

let gp: TestGoalpost
let queue: Queue<IngestJobData>
let stop: (() => Promise<void>) | undefined
let queueEvents: QueueEvents
let eventsConnection: Redis

beforeAll(async () => {
  ;({ gp, queue, stop } = await startWithIngestQueue())
  eventsConnection = createRedis(REDIS_URL, 'worker')
  queueEvents = new QueueEvents(queue.name, { connection: eventsConnection, prefix: gp.config.queuePrefix })
  await queueEvents.waitUntilReady()
})
afterAll(async () => {
  await queueEvents?.close()
  eventsConnection?.disconnect()
  await stop?.()
})

const db = () => gp.database.db

let counter = 0
const uid = (p: string) => `${p}-${++counter}-${Math.random().toString(36).slice(2, 7)}`
/** Processing times (R1): `at(n)` is n seconds into a test day. */
const at = (s: number) => new Date(Date.UTC(2026, 0, 1) + s * 1000).toISOString()

function track(userId: string, name: string, properties: Record<string, unknown>, receivedAt: string): IngestMessage {
  return {
    messageId: uid('msg'),
    type: 'track',
    name,
    userId,
    anonymousId: null,
    properties,
    meta: null,
    context: null,
    receivedAt,
    timestamp: null,
  }
}

const settled = () => ingestSettled(queue)

/** Runs one batch as an ingest job and returns the job's result. */
async function runJob(messages: IngestMessage[]): Promise<IngestResult> {
  const job = await queue.add('batch', { source: 'plugin', messages })
  return (await job.waitUntilFinished(queueEvents, 20_000)) as IngestResult
}

/** Posts to the signed Segment webhook, which honours each message's receivedAt (R1). */
async function webhook(message: Record<string, unknown>): Promise<void> {
  const body = JSON.stringify(message)
  const res = await fetch(`${gp.url}/webhooks/segment`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-signature': createHmac('sha1', WEBHOOK_SECRET).update(body).digest('hex') },
    body,
  })
  expect(res.status).toBe(200)
  await settled()
}

const attributesOf = async (personId: string) => (await db()('people').where('person_id', personId).first())?.attributes

const STEP_COLUMNS = ['drafted_at', 'attempted_at', 'sent_at', 'delivered_at', 'opened_at', 'clicked_at', 'failed_at'] as const
async function steps(deliveryId: string): Promise<Record<string, string | null>> {
  const row = await db()('deliveries').where('delivery_id', deliveryId).first()
  expect(row, `delivery ${deliveryId}`).toBeDefined()
  return Object.fromEntries(STEP_COLUMNS.map((c) => [c, row[c] ? (row[c] as Date).toISOString() : null]))
}

describe('the log', () => {
  it('stores every field of a message in its column, in batch order; absent ones as SQL NULL', async () => {
    const user = uid('cols')
    const full: IngestMessage = {
      ...track(user, 'Order Completed', { total: 5, nested: { list: [1, null, 'x'] }, note: 'quote " and \\ backslash' }, at(1)),
      anonymousId: uid('anon'),
      meta: { originalTimestamp: at(0) },
      context: { ip: '203.0.113.7', library: { name: 'analytics-node', version: '2.0.0' } },
      timestamp: at(0),
    }
    const bare = track(user, 'Product Viewed', {}, at(2))
    await runJob([full, bare])
    const rows = await db()('events').whereIn('message_id', [full.messageId, bare.messageId]).orderBy('seq')
    expect(rows.map((r) => r.message_id)).toEqual([full.messageId, bare.messageId])
    expect(rows[0]).toMatchObject({
      person_id: user,
      user_id: user,
      anonymous_id: full.anonymousId,
      type: 'track',
      name: 'Order Completed',
      properties: full.properties,
      meta: full.meta,
      context: full.context,
      source: 'plugin',
    })
    expect([rows[0].received_at.toISOString(), rows[0].sent_timestamp.toISOString()]).toEqual([at(1), at(0)])
    expect(rows[1]).toMatchObject({ anonymous_id: null, properties: {}, meta: null, context: null, sent_timestamp: null })
    // SQL NULL, not a JSON null in a jsonb column.
    const { rows: nulls } = await db().raw(
      `SELECT count(*)::int AS n FROM events WHERE message_id = ? AND meta IS NULL AND context IS NULL`,
      [bare.messageId],
    )
    expect(nulls[0].n).toBe(1)
  })
})

describe('traits (attributes)', () => {
  it('R3: identify traits shallow-merge and a null removes the key', async () => {
    const user = uid('u')
    const identify = (traits: Record<string, unknown>, s: number): IngestMessage => ({
      ...track(user, '', {}, at(s)),
      type: 'identify',
      name: null,
      properties: traits,
    })
    await runJob([identify({ a: 1, nested: { x: 1 }, keep: 'k' }, 1)])
    await runJob([identify({ nested: { y: 2 }, c: 3 }, 2), identify({ a: null, missing: null }, 3)])
    // Shallow: the nested object is replaced, not merged.
    expect(await attributesOf(user)).toEqual({ nested: { y: 2 }, c: 3, keep: 'k' })
  })

  it('R3: a late identify over the signed webhook gives the same attributes as in-order processing', async () => {
    const late = uid('late')
    const ordered = uid('ordered')
    const calls = [
      { s: 10, traits: { plan: 'free', trial: true, seats: 1 } },
      { s: 20, traits: { seats: null, region: 'eu' } },
      { s: 30, traits: { plan: 'pro', seats: 5 } },
    ]
    const send = (userId: string, { s, traits }: (typeof calls)[number]) =>
      webhook({ type: 'identify', userId, traits, messageId: `${userId}-${s}`, receivedAt: at(s) })
    for (const call of calls) await send(ordered, call)
    // Arrival order 30, 10, 20: both earlier ones are late (Segment webhook retries).
    for (const call of [calls[2], calls[0], calls[1]]) await send(late, call)

    const expected = { plan: 'pro', trial: true, region: 'eu', seats: 5 }
    expect(await attributesOf(ordered)).toEqual(expected)
    expect(await attributesOf(late)).toEqual(expected)
    const [row] = await db()('events').where('message_id', `${late}-10`)
    expect(row.received_at.toISOString()).toBe(at(10)) // R1: Segment's receivedAt is the processing time
    const person = await db()('people').where('person_id', late).first()
    expect(person.traits_received_at.toISOString()).toBe(at(30))
  })

  it('R3: a batch mixing a late identify with new ones folds in processing order', async () => {
    const user = uid('mixed')
    const identify = (traits: Record<string, unknown>, s: number): IngestMessage => ({
      ...track(user, '', {}, at(s)),
      type: 'identify',
      name: null,
      properties: traits,
    })
    await runJob([identify({ step: 'b', b: true }, 20)])
    await runJob([identify({ step: 'c', b: null }, 30), identify({ step: 'a', a: true }, 10)])
    expect(await attributesOf(user)).toEqual({ step: 'c', a: true })
  })
})

describe('deliveries (R4, R5, R7)', () => {
  const lifecycle = (userId: string, delivery: string) => [
    track(userId, 'Email Sent', { delivery_id: delivery, campaign_id: 'camp-1', template_id: 'tpl-1' }, at(100)),
    track(userId, 'Email Delivered', { delivery_id: delivery }, at(110)),
    track(userId, 'Email Opened', { delivery_id: delivery }, at(120)),
    track(userId, 'Email Opened', { delivery_id: delivery }, at(125)),
    track(userId, 'Email Link Clicked', { delivery_id: delivery }, at(130)),
    track(userId, 'Email Sent', { delivery_id: delivery }, at(140)),
  ]
  const expected = {
    drafted_at: null,
    attempted_at: null,
    sent_at: at(100),
    delivered_at: at(110),
    opened_at: at(120),
    clicked_at: at(130),
    failed_at: null,
  }

  it('R7: each step keeps its earliest time whatever the arrival order (one job per event, or one batch)', async () => {
    const user = uid('u')
    const [inOrder, reversed, shuffled, oneBatch] = [uid('d'), uid('d'), uid('d'), uid('d')]
    for (const m of lifecycle(user, inOrder)) await runJob([m])
    for (const m of lifecycle(user, reversed).reverse()) await runJob([m])
    const mixed = lifecycle(user, shuffled)
    for (const i of [4, 1, 5, 0, 3, 2]) await runJob([mixed[i]])
    await runJob(lifecycle(user, oneBatch).reverse())

    for (const d of [inOrder, reversed, shuffled, oneBatch]) expect(await steps(d), d).toEqual(expected)
    const rows = await db()('deliveries').whereIn('delivery_id', [inOrder, reversed]).orderBy('delivery_id')
    for (const row of rows) {
      expect(row).toMatchObject({ person_id: user, channel: 'email', campaign_ref: 'camp-1', action_id: 'tpl-1' })
      expect(row.first_received_at.toISOString()).toBe(at(100))
    }
  })

  it('R5/R7: a click alone stands in for sent, delivered and opened at its time', async () => {
    const user = uid('u')
    const [email, sms] = [uid('d'), uid('d')]
    await runJob([
      track(user, 'Email Link Clicked', { email_id: email }, at(50)),
      track(user, 'SMS Short Link Clicks', { send_id: sms }, at(60)),
    ])
    expect(await steps(email)).toEqual({ ...expected, sent_at: at(50), delivered_at: at(50), opened_at: at(50), clicked_at: at(50) })
    expect(await steps(sms)).toEqual({ ...expected, sent_at: at(60), delivered_at: at(60), opened_at: at(60), clicked_at: at(60) })
    expect((await db()('deliveries').where('delivery_id', sms).first()).channel).toBe('sms')
    // A later delivery receipt does not move the earlier stand-in time.
    await runJob([track(user, 'Email Delivered', { email_id: email }, at(70)), track(user, 'Email Sent', { email_id: email }, at(40))])
    expect(await steps(email)).toEqual({ ...expected, sent_at: at(40), delivered_at: at(50), opened_at: at(50), clicked_at: at(50) })
  })

  it('R5: revoked steps (bounce, failure, suppression, drop) set failed_at and keep the sending steps', async () => {
    const user = uid('u')
    const cases = [
      ['Email Bounced', 'email'],
      ['Email Suppressed', 'email'],
      ['Push Notification Bounced', 'push'],
      ['SMS Delivery Failed', 'sms'],
      ['Webhook Failed', 'webhook'],
    ] as const
    const ids = cases.map(() => uid('d'))
    await runJob(cases.map(([event], i) => track(user, event, { delivery_id: ids[i] }, at(200 + i))))
    for (const [i, [, channel]] of cases.entries()) {
      expect(await steps(ids[i])).toEqual({ ...expected, sent_at: null, delivered_at: null, opened_at: null, clicked_at: null, failed_at: at(200 + i) })
      expect((await db()('deliveries').where('delivery_id', ids[i]).first()).channel).toBe(channel)
    }
    // A bounce recorded after the sent step (even much later) revokes without erasing it.
    const sent = uid('d')
    await runJob([track(user, 'Email Sent', { delivery_id: sent }, at(300))])
    await runJob([track(user, 'Email Dropped', { delivery_id: sent }, at(900))])
    expect(await steps(sent)).toEqual({ ...expected, sent_at: at(300), delivered_at: null, opened_at: null, clicked_at: null, failed_at: at(900) })
  })

  it('R5: drafted and attempted do not set sent_at; a later Email Sent does', async () => {
    const user = uid('u')
    const delivery = uid('d')
    await runJob([
      track(user, 'Email Drafted', { delivery_id: delivery }, at(10)),
      track(user, 'Email Attempted', { delivery_id: delivery }, at(11)),
    ])
    expect(await steps(delivery)).toEqual({ ...expected, drafted_at: at(10), attempted_at: at(11), sent_at: null, delivered_at: null, opened_at: null, clicked_at: null })
    await runJob([track(user, 'Email Sent', { delivery_id: delivery }, at(12))])
    expect(await steps(delivery)).toEqual({ ...expected, drafted_at: at(10), attempted_at: at(11), sent_at: at(12), delivered_at: null, opened_at: null, clicked_at: null })
  })

  it("R4: 'recorded' events (Email Unsubscribed, Email Soft Bounced) are stored but create no delivery", async () => {
    const user = uid('u')
    const [a, b] = [uid('d'), uid('d')]
    const messages = [
      track(user, 'Email Unsubscribed', { delivery_id: a, campaign_id: 'c' }, at(1)),
      track(user, 'Email Soft Bounced', { delivery_id: b }, at(2)),
    ]
    const result = await runJob(messages)
    expect(result).toMatchObject({ inserted: 2, deliveries: 0, rejected: 0 })
    expect(await db()('events').whereIn('message_id', messages.map((m) => m.messageId))).toHaveLength(2)
    expect(await db()('deliveries').whereIn('delivery_id', [a, b])).toEqual([])
  })

  it('R4: a lifecycle event that names no delivery is stored in events and makes no delivery row', async () => {
    const user = uid('u')
    const messages = [
      track(user, 'Email Opened', { campaign_id: 'camp-x', delivery_id: '' }, at(1)),
      track(user, 'Push Notification Received', { campaign_id: 'camp-x' }, at(2)),
    ]
    const result = await runJob(messages)
    expect(result).toMatchObject({ inserted: 2, deliveries: 0, rejected: 0 })
    const rows = await db()('events').whereIn('message_id', messages.map((m) => m.messageId)).orderBy('seq')
    expect(rows.map((r) => r.name)).toEqual(['Email Opened', 'Push Notification Received'])
    expect(await db()('deliveries').where('person_id', user)).toEqual([])
  })
})

describe('messages Postgres refuses', () => {
  // Postgres refuses a year past 9999 (SQLSTATE 22009). normaliseMessage now
  // refuses such dates at the door, so these messages are queued directly:
  // the worker must still cope with whatever is in the queue (jobs queued by
  // an older version, a future normalisation gap) without retrying forever.
  const FAR_FUTURE = '+010000-01-01T00:00:00.000Z'

  it('CONTRACT (nothing accepted is lost): a message with a timestamp Postgres refuses is rejected with a reason; the rest of its batch is stored and the job completes', async () => {
    const user = uid('u')
    const delivery = uid('d')
    const good1 = track(user, 'Email Sent', { delivery_id: delivery }, at(1))
    const bad = { ...track(user, 'Order Completed', { total: 1 }, at(2)), timestamp: FAR_FUTURE }
    const good2 = { ...track(user, 'Order Completed', { total: 2 }, at(3)), type: 'identify' as const, name: null, properties: { plan: 'pro' } }
    const result = await runJob([good1, bad, good2])
    expect(result).toMatchObject({ inserted: 2, rejected: 1, deliveries: 1 })
    const stored = await db()('events').whereIn('message_id', [good1.messageId, bad.messageId, good2.messageId]).orderBy('seq')
    expect(stored.map((r) => r.message_id)).toEqual([good1.messageId, good2.messageId])
    expect(await attributesOf(user)).toEqual({ plan: 'pro' })
    expect((await steps(delivery)).sent_at).toBe(at(1))
    const [rejected] = await db()('rejected_messages').where('message_id', bad.messageId)
    // Postgres' own reason, not the statement it came from.
    expect(rejected.reason).toMatch(/^22\d{3}: [^\n]*out of range/)
    expect(rejected.reason).not.toMatch(/INSERT/i)
    expect(rejected.source).toBe('plugin')
    expect(JSON.parse(rejected.payload)).toMatchObject({ messageId: bad.messageId, timestamp: FAR_FUTURE })
    await settled()
  })

  it('CONTRACT (nothing accepted is lost): a message whose processing time (R1) Postgres refuses is rejected too (its reason kept, its time left empty)', async () => {
    const user = uid('u')
    const good = track(user, 'Product Viewed', {}, at(1))
    const bad = track(user, 'Product Viewed', {}, FAR_FUTURE)
    const result = await runJob([bad, good])
    expect(result).toMatchObject({ inserted: 1, rejected: 1 })
    expect(await db()('events').where('message_id', good.messageId)).toHaveLength(1)
    const [rejected] = await db()('rejected_messages').where('message_id', bad.messageId)
    expect(rejected.reason).toMatch(/^22\d{3}: /)
    expect(rejected.received_at).toBeNull()
    expect(JSON.parse(rejected.payload)).toMatchObject({ messageId: bad.messageId, receivedAt: FAR_FUTURE })
    await settled()
  })

  it('CONTRACT: a rejected message queued again is recorded once and the job still completes', async () => {
    const user = uid('u')
    const bad = { ...track(user, 'Order Completed', {}, at(1)), timestamp: FAR_FUTURE }
    expect(await runJob([bad])).toMatchObject({ inserted: 0, rejected: 1 })
    expect(await runJob([bad])).toMatchObject({ inserted: 0, rejected: 1 })
    expect(await db()('rejected_messages').where('message_id', bad.messageId)).toHaveLength(1)
    await settled()
  })

  it('group commit: jobs queued together are persisted together; a refused message costs only itself and each job reports its own counts', async () => {
    const users = Array.from({ length: 12 }, () => uid('g'))
    const batches = users.map((user, i) => [
      track(user, 'Email Sent', { delivery_id: `${user}-d` }, at(10 + i)),
      track(user, 'Product Viewed', {}, at(10 + i)),
    ])
    const bad = { ...track(users[5], 'Order Completed', {}, at(30)), timestamp: FAR_FUTURE }
    batches[5].push(bad)
    await queue.pause()
    const jobs = await queue.addBulk(batches.map((messages) => ({ name: 'batch', data: { source: 'plugin' as const, messages } })))
    await queue.resume()
    const results = (await Promise.all(jobs.map((j) => j.waitUntilFinished(queueEvents, 20_000)))) as IngestResult[]
    results.forEach((r, i) => expect(r).toMatchObject({ inserted: 2, duplicates: 0, deliveries: 1, rejected: i === 5 ? 1 : 0 }))
    const stored = await db()('events').whereIn('person_id', users)
    expect(stored).toHaveLength(24)
    expect(await db()('deliveries').whereIn('person_id', users)).toHaveLength(12)
    expect(await db()('rejected_messages').where('message_id', bad.messageId)).toHaveLength(1)
    // Within one person, persist order is batch order (R2).
    const first = stored.filter((e) => e.person_id === users[0]).sort((a, b) => a.seq - b.seq)
    expect(first.map((e) => e.message_id)).toEqual(batches[0].map((m) => m.messageId))
    await settled()
  })
})
