import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { REDIS_URL } from '../helpers/env.ts'
import { startGoalpost, type TestGoalpost } from '../helpers/goalpost.ts'
import { clientConnections } from '../helpers/redis.ts'
import { waitFor } from '../helpers/wait.ts'

// Redis connections cut while goalpost takes and persists batches (a
// failover, a restart of a Redis that keeps its data, a proxy dropping idle
// links): the HTTP side answers 503 for what it could not queue, a client
// retrying those (as Segment's libraries do) gets everything in, the workers
// reconnect, and in the end nothing is lost and nothing doubled. Only this
// file's goalpost's connections are cut: they carry its queue prefix in
// their names (goalpost-producer:<prefix>, goalpost-worker:<prefix>, and
// BullMQ's <prefix>:… for the connections it opens).

const BATCHES = 40
const PER_BATCH = 100

let gp: TestGoalpost
let admin: Redis
beforeAll(async () => {
  gp = await startGoalpost()
  admin = new Redis(REDIS_URL)
})
afterAll(async () => {
  admin?.disconnect()
  await gp?.stop()
})

/** Ids of the Redis connections of the goalpost with this queue prefix (this file's, by default). */
async function ourConnections(prefix = gp.config.queuePrefix): Promise<string[]> {
  return (await clientConnections(admin)).filter((c) => c.name.endsWith(`:${prefix}`) || c.name.startsWith(`${prefix}:`)).map((c) => c.id)
}

const batch = (n: number) => ({
  batch: Array.from({ length: PER_BATCH }, (_, i) => {
    const userId = `rf-u${(n * 13 + i) % 300}`
    return i % 10 === 0
      ? { type: 'identify', userId, traits: { last_batch: n }, messageId: `rf-${n}-${i}` }
      : { type: 'track', userId, event: i % 10 === 1 ? 'Email Sent' : 'Product Viewed', properties: { delivery_id: `rf-d-${n}-${i}`, n }, messageId: `rf-${n}-${i}` }
  }),
})

describe('Redis connections cut during ingest', () => {
  it('a client retrying 503s gets every batch in; nothing is lost or doubled once the workers reconnect', { timeout: 120_000 }, async () => {
    const statuses: number[] = []
    // Ten rounds, 200 ms apart, of cutting every connection of this goalpost,
    // while the batches below are sent (paced over the same two seconds) and
    // persisted.
    let cuts = 0
    const cutter = (async () => {
      for (let round = 0; round < 10; round++) {
        await new Promise((r) => setTimeout(r, 200))
        const ids = await ourConnections()
        for (const id of ids) await admin.client('KILL', 'ID', id).catch(() => 0)
        if (ids.length > 0) cuts++
      }
    })()

    const send = async (n: number) => {
      const body = JSON.stringify(batch(n))
      for (let attempt = 0; ; attempt++) {
        const res = await fetch(`${gp.url}/v1/batch`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: gp.basicAuth }, body })
        await res.text()
        statuses.push(res.status)
        if (res.status === 200) return
        // Never a 4xx for good input, never any other 5xx: 503 means "retry".
        expect(res.status).toBe(503)
        expect(attempt).toBeLessThan(200)
        await new Promise((r) => setTimeout(r, 50))
      }
    }
    const queue = Array.from({ length: BATCHES }, (_, n) => n)
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        for (let n = queue.shift(); n !== undefined; n = queue.shift()) {
          await send(n)
          await new Promise((r) => setTimeout(r, 200))
        }
      }),
    )
    await cutter
    expect(cuts).toBe(10)
    expect(statuses.filter((s) => s === 200)).toHaveLength(BATCHES)

    const db = gp.database.db
    await waitFor(async () => Number((await db('events').where('message_id', 'like', 'rf-%').count({ n: '*' }))[0].n) === BATCHES * PER_BATCH, {
      timeoutMs: 90_000,
      what: 'every accepted message to be stored after the cuts',
    })
    // Exactly once each (the key makes a double impossible in events; the
    // derived rows show whether anything was applied twice or half).
    expect(Number((await db('deliveries').where('delivery_id', 'like', 'rf-d-%').count({ n: '*' }))[0].n)).toBe(BATCHES * (PER_BATCH / 10))
    expect(await db('rejected_messages').pluck('message_id')).toEqual([])
    // Each person's traits are those of their last identify in rule order
    // (R2: processing time, then seq), as a clean run would fold them.
    const identifies = await db('events')
      .where('message_id', 'like', 'rf-%')
      .andWhere({ type: 'identify' })
      .orderBy([{ column: 'received_at' }, { column: 'seq' }])
      .select('person_id', 'properties')
    const expected = new Map<string, unknown>(identifies.map((e) => [e.person_id, e.properties]))
    expect(expected.size).toBeGreaterThan(100)
    const people = await db('people').whereIn('person_id', [...expected.keys()]).select('person_id', 'attributes')
    expect(new Map(people.map((p) => [p.person_id, p.attributes]))).toEqual(expected)
    // And the HTTP side is healthy again.
    expect((await fetch(`${gp.url}/readyz`)).status).toBe(200)
  })

  it('a shutdown that starts while the connections reconnect still finishes (BullMQ alone can wait forever there)', { timeout: 60_000 }, async () => {
    for (let round = 0; round < 3; round++) {
      const other = await startGoalpost({}, { GOALPOST_JOB_LOCK_MS: '2000' })
      const ids = await ourConnections(other.config.queuePrefix)
      expect(ids.length).toBeGreaterThan(2)
      for (const id of ids) await admin.client('KILL', 'ID', id).catch(() => 0)
      // Returns (the test's timeout is the bound): database dropped, keys removed.
      await other.stop()
      expect(await ourConnections(other.config.queuePrefix)).toEqual([])
    }
  })
})
