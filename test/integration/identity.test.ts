import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Queue } from 'bullmq'
import { lockPeople } from '../../src/db/events.ts'
import type { IngestJobData } from '../../src/jobs/queues.ts'
import type { IngestMessage } from '../../src/segment/normalise.ts'
import type { TestGoalpost } from '../helpers/goalpost.ts'
import { ingestSettled, startWithIngestQueue } from '../helpers/ingest-queue.ts'
import { waitFor } from '../helpers/wait.ts'

// R25: identify/alias merge the anonymous person into the known one.

let gp: TestGoalpost
let queue: Queue<IngestJobData>
let stop: (() => Promise<void>) | undefined

beforeAll(async () => {
  ;({ gp, queue, stop } = await startWithIngestQueue({ GOALPOST_INGEST_CONCURRENCY: '8' }))
})
afterAll(async () => {
  await stop?.()
})

const db = () => gp.database.db

// ---- message builders (the normalised form the queue carries) ----------------

interface Ids {
  userId?: string
  anonymousId?: string
}
let counter = 0
const uid = (p: string) => `${p}-${++counter}-${Math.random().toString(36).slice(2, 7)}`
/** Processing times (R1) in a fixed order: `at(n)` is n seconds into a test day. */
const at = (s: number) => new Date(Date.UTC(2026, 0, 1) + s * 1000).toISOString()

function message(type: IngestMessage['type'], ids: Ids, receivedAt: string, rest: Partial<IngestMessage> = {}): IngestMessage {
  return {
    messageId: uid('msg'),
    type,
    name: null,
    userId: ids.userId ?? null,
    anonymousId: ids.anonymousId ?? null,
    properties: {},
    meta: null,
    context: null,
    receivedAt,
    timestamp: null,
    ...rest,
  }
}
const track = (ids: Ids, name: string, properties: Record<string, unknown>, receivedAt: string) =>
  message('track', ids, receivedAt, { name, properties })
const identify = (ids: Ids, traits: Record<string, unknown>, receivedAt: string) =>
  message('identify', ids, receivedAt, { properties: traits })
const alias = (previousId: string, userId: string, receivedAt: string) =>
  message('alias', { userId }, receivedAt, { meta: { previousId } })

// ---- queue helpers ------------------------------------------------------------

const settled = () => ingestSettled(queue, { timeoutMs: 40_000 })

/** Processes batches one after the other, each finished before the next is queued. */
async function inOrder(...batches: IngestMessage[][]): Promise<void> {
  for (const messages of batches) {
    await queue.add('batch', { source: 'plugin', messages })
    await settled()
  }
}

async function personOf(messageIds: string[]): Promise<string[]> {
  const rows = await db()('events').whereIn('message_id', messageIds).select('message_id', 'person_id')
  const byId = new Map(rows.map((r) => [r.message_id, r.person_id as string]))
  return messageIds.map((id) => byId.get(id) ?? '<missing>')
}
const person = async (id: string) => (await db()('people').where('person_id', id).first()) ?? null
const link = async (id: string) => (await db()('identity_links').where('anonymous_id', id).first())?.person_id ?? null

describe('R25 identity merge', () => {
  it('R25: identify{anonymousId,userId} over HTTP moves events, deliveries and people to the userId', async () => {
    const anon = uid('anon')
    const user = uid('user')
    const delivery = uid('del')
    const post = async (batch: unknown[]) => {
      const res = await fetch(`${gp.url}/v1/batch`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: gp.basicAuth },
        body: JSON.stringify({ batch }),
      })
      expect(res.status).toBe(200)
      await settled()
    }
    await post([
      { type: 'identify', anonymousId: anon, messageId: `${anon}-1`, traits: { color: 'red', size: 'M' } },
      { type: 'track', anonymousId: anon, event: 'Email Delivered', messageId: `${anon}-2`, properties: { delivery_id: delivery } },
      { type: 'track', anonymousId: anon, event: 'Order Completed', messageId: `${anon}-3`, properties: { total: 20 } },
    ])
    expect(await person(anon)).not.toBeNull()
    await post([{ type: 'identify', userId: user, messageId: `${user}-1`, traits: { size: 'L', name: 'Ada' } }])
    await post([{ type: 'identify', userId: user, anonymousId: anon, messageId: `${user}-2`, traits: { vip: true } }])

    expect(await personOf([`${anon}-1`, `${anon}-2`, `${anon}-3`, `${user}-1`, `${user}-2`])).toEqual(Array(5).fill(user))
    const [d] = await db()('deliveries').where('delivery_id', delivery)
    expect(d.person_id).toBe(user)
    expect(d.delivered_at).not.toBeNull()
    expect(await person(anon)).toBeNull()
    expect(await link(anon)).toBe(user)
    // Folded from both people's identifies in processing order: the user's later size wins.
    expect((await person(user)).attributes).toEqual({ color: 'red', size: 'L', name: 'Ada', vip: true })
  })

  it('R25: attributes of the merged person are folded in processing order, whichever person the identify was under', async () => {
    const anon = uid('anon')
    const user = uid('user')
    // The user's identify is processed first, the anonymous one later: the anonymous size wins.
    await inOrder(
      [identify({ userId: user }, { size: 'L', keep: 1 }, at(10))],
      [identify({ anonymousId: anon }, { size: 'S', drop: 'x' }, at(20))],
      [identify({ anonymousId: anon }, { drop: null }, at(30))],
      [identify({ userId: user, anonymousId: anon }, {}, at(40))],
    )
    expect((await person(user)).attributes).toEqual({ size: 'S', keep: 1 })
    expect(await person(anon)).toBeNull()
  })

  it('R25: alias{previousId,userId} merges the previous id into the userId', async () => {
    const prev = uid('prev')
    const user = uid('user')
    const delivery = uid('del')
    const before = [
      track({ userId: prev }, 'Email Opened', { delivery_id: delivery }, at(1)),
      identify({ userId: prev }, { plan: 'trial' }, at(2)),
      track({ userId: prev }, 'Cart Viewed', {}, at(3)),
    ]
    await inOrder(before, [identify({ userId: user }, { plan: 'pro', seats: 3 }, at(4))], [alias(prev, user, at(5))])
    expect(await personOf(before.map((m) => m.messageId))).toEqual([user, user, user])
    expect((await db()('deliveries').where('delivery_id', delivery).first()).person_id).toBe(user)
    expect(await person(prev)).toBeNull()
    expect(await link(prev)).toBe(user)
    expect((await person(user)).attributes).toEqual({ plan: 'pro', seats: 3 })
    // Calls made later under the previous id resolve to the user directly.
    const later = track({ userId: prev }, 'Checkout Started', {}, at(6))
    await inOrder([later])
    expect(await personOf([later.messageId])).toEqual([user])
    expect(await person(prev)).toBeNull()
  })

  it('R25: an identify processed before the anonymous events makes later anonymous events resolve to the user directly', async () => {
    const anon = uid('anon')
    const user = uid('user')
    const delivery = uid('del')
    await inOrder([identify({ userId: user, anonymousId: anon }, { plan: 'free' }, at(1))])
    const later = [
      track({ anonymousId: anon }, 'Product Viewed', {}, at(2)),
      track({ anonymousId: anon }, 'Email Link Clicked', { delivery_id: delivery }, at(3)),
      identify({ anonymousId: anon }, { plan: 'pro' }, at(4)),
    ]
    await inOrder(later)
    expect(await personOf(later.map((m) => m.messageId))).toEqual([user, user, user])
    expect(await person(anon)).toBeNull()
    expect((await db()('deliveries').where('delivery_id', delivery).first()).person_id).toBe(user)
    expect((await person(user)).attributes).toEqual({ plan: 'pro' })
  })

  it('R25: in one batch, anonymous events before and after the merging identify all end under the userId', async () => {
    const anon = uid('anon')
    const user = uid('user')
    const batch = [
      identify({ anonymousId: anon }, { first: 1, shared: 'anon' }, at(1)),
      identify({ userId: user, anonymousId: anon }, { shared: 'user' }, at(2)),
      track({ anonymousId: anon }, 'Product Viewed', {}, at(3)),
      identify({ anonymousId: anon }, { last: 1 }, at(4)),
    ]
    await inOrder(batch)
    expect(await personOf(batch.map((m) => m.messageId))).toEqual([user, user, user, user])
    expect(await person(anon)).toBeNull()
    expect((await person(user)).attributes).toEqual({ first: 1, shared: 'user', last: 1 })
  })

  it("R25: a message naming a linked anonymous id waits for its person's lock (as evaluation of that person takes it)", async () => {
    const anon = uid('anon')
    const user = uid('user')
    await inOrder([identify({ userId: user, anonymousId: anon }, {}, at(1))])
    const later = track({ anonymousId: anon }, 'Product Viewed', {}, at(2))
    await db().transaction(async (trx) => {
      await lockPeople(trx, [user]) // what evaluating the user holds
      await queue.add('batch', { source: 'plugin', messages: [later] })
      await waitFor(
        async () => {
          const { rows } = await db().raw(
            `SELECT count(*)::int AS n FROM pg_stat_activity
              WHERE datname = current_database() AND application_name = 'goalpost'
                AND wait_event_type = 'Lock' AND wait_event = 'advisory'`,
          )
          return rows[0].n > 0
        },
        { what: 'the ingest job to wait for the advisory lock' },
      )
      expect(await db()('events').where('message_id', later.messageId)).toEqual([])
    })
    await settled()
    expect(await personOf([later.messageId])).toEqual([user])
  })

  it('R25: a chain (anon -> user1 by identify, then alias user1 -> user2) ends with everything under user2', async () => {
    const anon = uid('anon')
    const user1 = uid('user1')
    const user2 = uid('user2')
    const d1 = uid('del')
    const d2 = uid('del')
    const anonEvents = [
      track({ anonymousId: anon }, 'Email Delivered', { delivery_id: d1 }, at(1)),
      identify({ anonymousId: anon }, { a: 1 }, at(2)),
    ]
    const user1Events = [
      identify({ userId: user1, anonymousId: anon }, { b: 1 }, at(3)),
      track({ userId: user1 }, 'SMS Delivered', { delivery_id: d2 }, at(4)),
    ]
    const user2Events = [identify({ userId: user2 }, { a: 2, c: 1 }, at(5))]
    const aliasing = [alias(user1, user2, at(6))]
    await inOrder(anonEvents, user1Events, user2Events, aliasing)
    const all = [...anonEvents, ...user1Events, ...user2Events, ...aliasing]
    expect(await personOf(all.map((m) => m.messageId))).toEqual(Array(all.length).fill(user2))
    const deliveries = await db()('deliveries').whereIn('delivery_id', [d1, d2]).orderBy('delivery_id')
    expect(deliveries.map((d) => d.person_id)).toEqual([user2, user2])
    expect(await person(anon)).toBeNull()
    expect(await person(user1)).toBeNull()
    expect(await link(anon)).toBe(user2)
    expect(await link(user1)).toBe(user2)
    expect((await person(user2)).attributes).toEqual({ a: 2, b: 1, c: 1 })
    // Anything later under either old id lands under user2 directly.
    const later = [track({ anonymousId: anon }, 'X', {}, at(7)), track({ userId: user1 }, 'Y', {}, at(8))]
    await inOrder(later)
    expect(await personOf(later.map((m) => m.messageId))).toEqual([user2, user2])
  })

  it('R25: an anonymous id identified later with a second userId stays with the first (first link wins)', async () => {
    const anon = uid('anon')
    const user1 = uid('first')
    const user2 = uid('second')
    const anonTrack = track({ anonymousId: anon }, 'Product Viewed', {}, at(1))
    const first = identify({ userId: user1, anonymousId: anon }, { who: 1 }, at(2))
    const second = identify({ userId: user2, anonymousId: anon }, { who: 2 }, at(3))
    const after = track({ anonymousId: anon }, 'Cart Viewed', {}, at(4))
    await inOrder([anonTrack], [first], [second], [after])
    expect(await personOf([anonTrack.messageId, first.messageId, second.messageId, after.messageId])).toEqual([
      user1,
      user1,
      user2,
      user1,
    ])
    expect(await link(anon)).toBe(user1)
    expect((await person(user1)).attributes).toEqual({ who: 1 })
    expect((await person(user2)).attributes).toEqual({ who: 2 })
  })

  it('R25: anonymous events and the merging identify in concurrent batches end under the userId (100 people)', async () => {
    const people = Array.from({ length: 100 }, (_, i) => ({ i, anon: uid('canon'), user: uid('cuser'), delivery: uid('cdel') }))
    const jobs: IngestMessage[][] = []
    for (const { i, anon, user, delivery } of people) {
      const t = i * 10
      // The anonymous visit, the link, and the known user's own calls, as three batches.
      jobs.push([
        track({ anonymousId: anon }, 'Product Viewed', { i }, at(t + 1)),
        track({ anonymousId: anon }, 'Email Delivered', { delivery_id: delivery }, at(t + 2)),
        identify({ anonymousId: anon }, { anon_trait: i }, at(t + 3)),
      ])
      jobs.push([identify({ userId: user, anonymousId: anon }, { linked: true }, at(t + 4))])
      jobs.push([identify({ userId: user }, { user_trait: i }, at(t + 5)), track({ userId: user }, 'Email Opened', { delivery_id: delivery }, at(t + 6))])
    }
    // Shuffle so a link is as likely to run before as after (or alongside) the events it links.
    for (let k = jobs.length - 1; k > 0; k--) {
      const j = Math.floor(Math.random() * (k + 1))
      ;[jobs[k], jobs[j]] = [jobs[j], jobs[k]]
    }
    await queue.pause()
    await queue.addBulk(jobs.map((messages) => ({ name: 'batch', data: { source: 'plugin' as const, messages } })))
    await queue.resume()
    await settled()

    const users = people.map((p) => p.user)
    const anons = people.map((p) => p.anon)
    const events = await db()('events').whereIn('person_id', [...users, ...anons]).select('person_id')
    expect(events).toHaveLength(people.length * 6)
    expect(events.filter((e) => anons.includes(e.person_id))).toEqual([])
    expect(await db()('people').whereIn('person_id', anons)).toEqual([])
    const rows = await db()('people').whereIn('person_id', users)
    const attributes = new Map(rows.map((r) => [r.person_id, r.attributes]))
    const deliveries = new Map(
      (await db()('deliveries').whereIn('delivery_id', people.map((p) => p.delivery))).map((d) => [d.delivery_id, d]),
    )
    const links = new Map((await db()('identity_links').whereIn('anonymous_id', anons)).map((l) => [l.anonymous_id, l.person_id]))
    for (const { i, anon, user, delivery } of people) {
      expect(attributes.get(user), user).toEqual({ anon_trait: i, linked: true, user_trait: i })
      expect(links.get(anon)).toBe(user)
      expect(deliveries.get(delivery)?.person_id).toBe(user)
      expect(deliveries.get(delivery)?.opened_at.toISOString()).toBe(at(i * 10 + 6))
      expect(deliveries.get(delivery)?.delivered_at.toISOString()).toBe(at(i * 10 + 2))
    }
  }, 60_000)

  it('R25: after a merge, traits sent under the anonymous id and under the userId in concurrent batches are all kept', async () => {
    // The two batches lock different ids (the anonymousId, the userId) but
    // fold traits into the same person: neither may overwrite the other.
    const people = Array.from({ length: 100 }, (_, i) => ({ i, anon: uid('ranon'), user: uid('ruser') }))
    await queue.addBulk(
      people.map(({ i, anon, user }) => ({
        name: 'batch',
        data: { source: 'plugin' as const, messages: [identify({ userId: user, anonymousId: anon }, { linked: true }, at(i * 10 + 1))] },
      })),
    )
    await settled()
    await queue.pause()
    await queue.addBulk(
      people.flatMap(({ i, anon, user }) => [
        { name: 'batch', data: { source: 'plugin' as const, messages: [identify({ anonymousId: anon }, { anon_trait: i }, at(i * 10 + 3))] } },
        { name: 'batch', data: { source: 'plugin' as const, messages: [identify({ userId: user }, { user_trait: i }, at(i * 10 + 5))] } },
      ]),
    )
    await queue.resume()
    await settled()
    const rows = await db()('people').whereIn('person_id', people.map((p) => p.user))
    const attributes = new Map(rows.map((r) => [r.person_id, r.attributes]))
    const lost = people.filter(({ i, user }) => JSON.stringify(attributes.get(user)) !== JSON.stringify({ linked: true, anon_trait: i, user_trait: i }))
    expect(lost.map(({ user }) => ({ user, attributes: attributes.get(user) }))).toEqual([])
  }, 60_000)
})
