import type { Queue } from 'bullmq'
import type { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createIngestQueue, type IngestJobData } from '../../src/jobs/queues.ts'
import { createRedis, waitUntilReady } from '../../src/jobs/redis.ts'
import { revalidate, segmentCall } from '../../src/jobs/replay-rejected.ts'
import { normaliseMessage, type IngestMessage } from '../../src/segment/normalise.ts'
import { goalpostCli, inBatches } from '../helpers/cli.ts'
import { REDIS_URL } from '../helpers/env.ts'
import { ADMIN_TOKEN, startGoalpost, testEnv, type TestGoalpost } from '../helpers/goalpost.ts'
import { waitFor } from '../helpers/wait.ts'

// Dead letters (issue 9, item 5): messages Postgres refused for good are
// listed and, once the cause is fixed, replayed through the normal path
// (validated again, queued on the ingest queue, stored and evaluated by the
// workers), idempotent by messageId. The "cause" here is a CHECK constraint
// this test puts on its own database's events table, then drops.

let gp: TestGoalpost
let env: Record<string, string>
let redis: Redis
let queue: Queue<IngestJobData>

const USER = 'dead-letter-user'
const FAR_FUTURE = '+010000-01-01T00:00:00.000Z'
const ids = { good: 'dl-good', a1: 'dl-a1', a2: 'dl-a2', b1: 'dl-b1', far: 'dl-far' }

const db = () => gp.database.db
const rows = () => db()('rejected_messages').orderBy('id').select('id', 'message_id', 'source', 'received_at', 'rejected_at', 'reason', 'replayed_at', 'payload')
const stored = (messageIds: string[]) => db()('events').whereIn('message_id', messageIds).orderBy('message_id').pluck('message_id')
const admin = (path: string, init: RequestInit = {}) =>
  fetch(`${gp.url}${path}`, { ...init, headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_TOKEN}`, ...init.headers } })
const json = async (args: string[]) => {
  const r = await goalpostCli(args, env)
  expect(r.code, r.stderr).toBe(0)
  return JSON.parse(r.stdout)
}

beforeAll(async () => {
  gp = await startGoalpost({ http: true, workers: true })
  env = testEnv(gp.database, gp.config.queuePrefix)
  redis = createRedis(REDIS_URL, 'producer', gp.config.queuePrefix)
  await waitUntilReady(redis)
  queue = createIngestQueue(redis, gp.config.queuePrefix)

  // The cause: Postgres refuses two event names (SQLSTATE 23514).
  await db().raw(`ALTER TABLE events ADD CONSTRAINT refuse_a CHECK (name IS DISTINCT FROM 'Refused A')`)
  await db().raw(`ALTER TABLE events ADD CONSTRAINT refuse_b CHECK (name IS DISTINCT FROM 'Refused B')`)
  const track = (messageId: string, event: string) => ({ type: 'track', userId: USER, event, messageId, properties: { total: 3 } })
  const res = await fetch(`${gp.url}/v1/batch`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: gp.basicAuth },
    body: JSON.stringify({ batch: [track(ids.good, 'Viewed'), track(ids.a1, 'Refused A'), track(ids.a2, 'Refused A'), track(ids.b1, 'Refused B')] }),
  })
  expect(res.status).toBe(200)
  // A message no validation lets in any more (queued by an older version, say): Postgres refuses its year.
  const far: IngestMessage = {
    messageId: ids.far,
    type: 'track',
    name: 'Viewed',
    userId: USER,
    anonymousId: null,
    properties: {},
    meta: null,
    context: null,
    receivedAt: new Date().toISOString(),
    timestamp: FAR_FUTURE,
  }
  await queue.add('batch', { source: 'plugin', messages: [far] })
  await waitFor(async () => (await rows()).length === 4 && (await stored([ids.good])).length === 1, { what: 'four rejections and the good message stored' })
  // A message refused once, then stored when its client sent it again: a replay finds it stored.
  await db()('rejected_messages').insert({
    message_id: ids.good,
    source: 'api',
    received_at: new Date(),
    reason: '57014: canceling statement due to statement timeout',
    payload: JSON.stringify({ ...far, messageId: ids.good, timestamp: null }),
  })
}, 60_000)

afterAll(async () => {
  await queue?.close()
  redis?.disconnect()
  await gp?.stop()
})

describe('goalpost rejected list and GET /admin/rejected', () => {
  it('lists the pending dead letters with their reasons, filtered by reason text (case-insensitive) and by time', { timeout: 180_000 }, async () => {
    const all = await json(['rejected', 'list', '--json'])
    expect(all.total).toBe(5)
    expect(all.messages.map((m: { message_id: string }) => m.message_id)).toEqual([ids.a1, ids.a2, ids.b1, ids.far, ids.good])
    expect(all.messages[0]).toMatchObject({ source: 'api', replayed_at: null, reason: expect.stringMatching(/^23514: .*"refuse_a"/) })
    expect(all.messages[3]).toMatchObject({ source: 'plugin', reason: expect.stringMatching(/^22\d{3}: /) })
    expect(Object.keys(all.messages[0]).sort()).toEqual(['id', 'message_id', 'reason', 'received_at', 'rejected_at', 'replayed_at', 'source'])

    const [byReason, upper, recent, future, limited, text] = await inBatches([
      () => json(['rejected', 'list', '--json', '--reason', 'refuse_a']),
      () => json(['rejected', 'list', '--json', '--reason', 'REFUSE_A']),
      () => json(['rejected', 'list', '--json', '--since', '1h']),
      () => json(['rejected', 'list', '--json', '--since', '2099-01-01T00:00:00Z']),
      () => json(['rejected', 'list', '--json', '--limit', '2']),
      () => goalpostCli(['rejected', 'list', '--reason', '23514'], env),
    ])
    expect(byReason.messages.map((m: { message_id: string }) => m.message_id)).toEqual([ids.a1, ids.a2])
    expect(upper).toEqual(byReason)
    expect(recent.total).toBe(5)
    expect(future).toEqual({ total: 0, messages: [] })
    expect(limited.total).toBe(5)
    expect(limited.messages.map((m: { message_id: string }) => m.message_id)).toEqual([ids.a1, ids.a2])
    expect(text.stdout.split('\n')[0]).toBe('3 rejected messages not replayed yet')
    expect(text.stdout).toContain(`  ${ids.b1}\n      23514: new row for relation "events" violates check constraint "refuse_b"`)

    const viaAdmin = await admin('/admin/rejected?reason=refuse_a')
    expect(viaAdmin.status).toBe(200)
    expect(await viaAdmin.json()).toEqual(byReason)
    expect((await fetch(`${gp.url}/admin/rejected`)).status).toBe(401)
    const bad = await admin('/admin/rejected?since=yesterday')
    expect(bad.status).toBe(400)
    expect((await bad.json()).error).toMatchObject({ code: 'invalid_filter', message: expect.stringMatching(/^query\.since: /) })
  })
})

describe('goalpost rejected replay and POST /admin/rejected/replay', () => {
  it('--dry-run (and dry_run over HTTP) says what a replay would do and changes nothing', { timeout: 120_000 }, async () => {
    const before = { rows: await rows(), events: await db()('events').count({ n: '*' }), queue: await queue.getJobCounts() }
    const dry = await json(['rejected', 'replay', '--dry-run', '--json'])
    expect(dry).toEqual({
      dry_run: true,
      matched: 5,
      queued: 3,
      already_stored: 1,
      still_invalid: 1,
      invalid: [{ id: expect.any(Number), message_id: ids.far, reason: expect.stringMatching(/^replay: timestamp: must be an ISO 8601 date-time/) }],
    })
    const viaAdmin = await admin('/admin/rejected/replay', { method: 'POST', body: JSON.stringify({ dry_run: true, reason: 'refuse' }) })
    expect(viaAdmin.status).toBe(200)
    expect(await viaAdmin.json()).toMatchObject({ dry_run: true, matched: 3, queued: 3, already_stored: 0, still_invalid: 0 })
    expect({ rows: await rows(), events: await db()('events').count({ n: '*' }), queue: await queue.getJobCounts() }).toEqual(before)
  })

  it('once the cause is fixed, replay stores the fixed messages once at their own processing time; still-invalid and refused-again ones stay rejected with their reason; a second replay queues nothing', { timeout: 180_000 }, async () => {
    const original = new Map((await rows()).map((r) => [r.message_id, r]))
    await db().raw('ALTER TABLE events DROP CONSTRAINT refuse_a')

    const first = await json(['rejected', 'replay', '--json'])
    expect(first).toMatchObject({ dry_run: false, matched: 5, queued: 3, already_stored: 1, still_invalid: 1 })
    await waitFor(async () => (await stored([ids.a1, ids.a2])).length === 2, { what: 'the replayed messages stored' })
    // R1: a replayed message keeps the processing time it was accepted at.
    const events = await db()('events').whereIn('message_id', [ids.a1, ids.a2]).orderBy('message_id').select('message_id', 'received_at', 'name')
    expect(events).toEqual([
      { message_id: ids.a1, received_at: original.get(ids.a1)!.received_at, name: 'Refused A' },
      { message_id: ids.a2, received_at: original.get(ids.a2)!.received_at, name: 'Refused A' },
    ])
    // b1 is still refused by Postgres: pending again once the worker has refused it again.
    await waitFor(async () => (await db()('rejected_messages').where({ message_id: ids.b1 }).first()).replayed_at === null, { what: 'b1 refused again' })
    const after = new Map((await rows()).map((r) => [r.message_id, r]))
    expect(after.get(ids.a1)!.replayed_at).toBeInstanceOf(Date)
    expect(after.get(ids.good)!.replayed_at).toBeInstanceOf(Date)
    expect(after.get(ids.b1)!.reason).toMatch(/"refuse_b"/)
    expect(after.get(ids.b1)!.rejected_at.getTime()).toBeGreaterThan(original.get(ids.b1)!.rejected_at.getTime())
    expect(after.get(ids.far)).toMatchObject({ replayed_at: null, reason: expect.stringMatching(/^replay: timestamp: /) })

    const listed = await json(['rejected', 'list', '--json'])
    expect(listed.messages.map((m: { message_id: string }) => m.message_id)).toEqual([ids.b1, ids.far])
    const everything = await json(['rejected', 'list', '--all', '--json'])
    expect(everything.total).toBe(5)

    // Fixed too: replayed over HTTP this time.
    await db().raw('ALTER TABLE events DROP CONSTRAINT refuse_b')
    const viaAdmin = await admin('/admin/rejected/replay', { method: 'POST', body: JSON.stringify({ reason: 'refuse_b' }) })
    expect(await viaAdmin.json()).toMatchObject({ dry_run: false, matched: 1, queued: 1, already_stored: 0, still_invalid: 0 })
    await waitFor(async () => (await stored([ids.b1])).length === 1, { what: 'b1 stored' })

    // Twice: nothing left to queue but the invalid one, and nothing is stored twice.
    const waitingBefore = await queue.getJobCounts('waiting', 'active', 'delayed')
    const second = await json(['rejected', 'replay', '--json'])
    expect(second).toMatchObject({ matched: 1, queued: 0, already_stored: 0, still_invalid: 1 })
    expect(await queue.getJobCounts('waiting', 'active', 'delayed')).toEqual(waitingBefore)
    const counts: { message_id: string; n: string }[] = await db()('events').whereIn('message_id', Object.values(ids)).groupBy('message_id').select('message_id').count({ n: '*' })
    expect(counts.map((c) => [c.message_id, Number(c.n)]).sort()).toEqual([[ids.a1, 1], [ids.a2, 1], [ids.b1, 1], [ids.good, 1]])
  })

  it('rejects a bad request body with a 400 that says what is wrong', async () => {
    const res = await admin('/admin/rejected/replay', { method: 'POST', body: JSON.stringify({ dry_run: 'yes' }) })
    expect(res.status).toBe(400)
    expect((await res.json()).error).toMatchObject({ code: 'invalid_body', message: 'dry_run: must be true or false' })
  })
})

describe('a recorded message validated again', () => {
  it('normalising the Segment call rebuilt from a recorded message gives the same message back, for every type', () => {
    const receivedAt = '2026-11-01T00:00:00.000Z'
    const calls = [
      { type: 'track', userId: 'u', event: 'E', properties: { a: 1 }, messageId: 'm1', timestamp: '2026-10-31T00:00:00.000Z', originalTimestamp: '2026-10-30T00:00:00.000Z', receivedAt: '2026-10-29T00:00:00.000Z', context: { ip: '1' } },
      { type: 'page', anonymousId: 'a', name: 'Home', category: 'c', properties: { path: '/' }, messageId: 'm2' },
      { type: 'screen', userId: 'u', name: 'S', messageId: 'm3' },
      { type: 'identify', userId: 'u', traits: { plan: 'pro', gone: null }, messageId: 'm4' },
      { type: 'group', userId: 'u', groupId: 'g', traits: { n: 1 }, messageId: 'm5' },
      { type: 'alias', userId: 'u', previousId: 'p', messageId: 'm6' },
      { type: 'track', userId: 'u', event: 'No id' },
    ]
    for (const call of calls) {
      const first = normaliseMessage(call, { receivedAt })
      if (!first.ok) throw new Error(first.error.message)
      const again = revalidate(JSON.stringify(first.message))
      expect(again.ok && again.message, JSON.stringify(segmentCall(first.message as unknown as Record<string, unknown>))).toEqual(first.message)
    }
    expect(revalidate('{"messageId": "x"')).toMatchObject({ ok: false, reason: expect.stringMatching(/^replay: the recorded payload is not JSON/) })
    expect(revalidate('{"messageId":"x","type":"track","userId":"u","name":"E","receivedAt":"soon"}')).toMatchObject({ ok: false, reason: expect.stringMatching(/^replay: receivedAt/) })
  })
})
