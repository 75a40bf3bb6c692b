import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { upsertDeliveries, type DeliveryObservation } from '../../src/db/deliveries.ts'
import { insertEvents, insertEventsBulk, type Source } from '../../src/db/events.ts'
import { applyTraits } from '../../src/db/people.ts'
import type { IngestMessage } from '../../src/segment/normalise.ts'
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts'

// An import writes the log by COPY through a staging table
// (insertEventsBulk); the live path binds column arrays (insertEvents).
// Both must store the same rows and answer the same (R2 seq order, messageId
// idempotency, R25 identity links), whatever characters the values carry.

const AWKWARD = ['tab\there', 'new\nline', 'cr\rhere', 'back\\slash', '\\N', 'quote"s', "apo'strophe", 'üñí©ødé ☃ 𝄞', '{"json":1}', '']

function messages(prefix: string): IngestMessage[] {
  const out: IngestMessage[] = AWKWARD.map((text, i) => ({
    messageId: `${prefix}-${text}-${i}`,
    type: 'track',
    name: text === '' ? 'Order Completed' : `Event ${text}`,
    userId: i % 3 === 0 ? null : `${prefix}-user ${text}`,
    anonymousId: i % 3 === 0 ? `${prefix}-anon-${text}` : null,
    properties: { text, nested: { list: [text, 1, null, true], back: '\\u0041' }, [text || 'empty']: 1.5 },
    meta: i % 2 === 0 ? null : { originalTimestamp: '2026-01-01T00:00:00.000Z' },
    context: i % 4 === 0 ? null : { library: { name: text } },
    receivedAt: `2026-03-01T10:00:0${i}.000Z`,
    timestamp: i % 2 === 0 ? null : '2026-03-01T09:59:59.123Z',
  }))
  // A messageId twice in one batch: the first copy is stored.
  out.push({ ...out[1], properties: { second: true } })
  // A message about an anonymous id linked to a person (R25).
  out.push({ ...out[0], messageId: `${prefix}-linked`, userId: null, anonymousId: `${prefix}-linked-anon` })
  return out
}

let a: TestDatabase
let b: TestDatabase
beforeAll(async () => {
  ;[a, b] = await Promise.all([createTestDatabase(), createTestDatabase()])
})
afterAll(async () => {
  await Promise.all([a?.drop(), b?.drop()])
})

async function store(t: TestDatabase, bulk: boolean, batch: IngestMessage[]) {
  const sources = batch.map((): Source => 'import')
  return t.db.transaction(async (trx) => {
    await trx('identity_links').insert({ anonymous_id: 'x-linked-anon', person_id: 'x-linker', linked_at: '2026-01-01T00:00:00Z', linked_seq: 0, message_id: 'link' }).onConflict().ignore()
    await trx('people').insert({ person_id: 'x-linker' }).onConflict().ignore()
    return (bulk ? insertEventsBulk : insertEvents)(trx, sources, batch)
  })
}

const rows = (t: TestDatabase) =>
  t.db('events')
    .select('message_id', 'seq', 'person_id', 'user_id', 'anonymous_id', 'type', 'name', 'properties', 'meta', 'context', 'received_at', 'sent_timestamp', 'source')
    .orderBy('seq')

describe('insertEventsBulk (COPY) stores exactly what insertEvents stores', () => {
  it('same rows, seq in batch order, first copy of a repeated messageId, linked ids resolved, new people flagged; a second run stores nothing', async () => {
    const batch = messages('x')
    const [bulk, plain] = await Promise.all([store(a, true, batch), store(b, false, batch)])
    expect(bulk.map(({ message, ...e }) => ({ ...e, id: message.messageId }))).toEqual(plain.map(({ message, ...e }) => ({ ...e, id: message.messageId })))
    expect(bulk).toHaveLength(batch.length - 1)
    expect(bulk.find((e) => e.message.messageId === 'x-linked')?.personId).toBe('x-linker')
    expect(bulk.find((e) => e.message.messageId === 'x-linked')?.newPerson).toBe(false)
    const [ra, rb] = await Promise.all([rows(a), rows(b)])
    expect(ra).toEqual(rb)
    expect(ra.map((r) => r.properties.text ?? null)).toEqual([...AWKWARD, null].map((t, i) => (i === AWKWARD.length ? AWKWARD[0] : t)))
    // Idempotent by messageId, and the staging table holds nothing after commit.
    expect(await store(a, true, batch)).toEqual([])
    const again = await a.db.transaction(async (trx) => {
      await insertEventsBulk(trx, ['import'], [{ ...batch[2], messageId: 'x-fresh' }])
      const { rows: staged } = await trx.raw<{ rows: { n: number }[] }>(`SELECT count(*)::int AS n FROM goalpost_staged_events`)
      return staged[0].n
    })
    expect(again).toBe(1)
    expect(await rows(a)).toHaveLength(ra.length + 1)
  })
})

describe('upsertDeliveries and applyTraits, bulk (COPY) and not, write the same rows', () => {
  it('same deliveries (earliest step times, first ids named) and the same attributes, whatever the characters', async () => {
    const people = AWKWARD.map((t, i) => `p-${t}-${i}`)
    const observations: DeliveryObservation[] = AWKWARD.flatMap((t, i) =>
      (['sent', 'delivered', 'opened'] as const).map((step, k) => ({
        fact: { deliveryId: `d-${t}-${i % 4}`, campaignRef: k === 0 ? null : `c ${t}`, journeyRef: null, actionId: t, channel: 'email' as const, step },
        personId: people[i],
        receivedAt: `2026-03-0${1 + k}T10:00:0${i}.000Z`,
        seq: 100 * i + k,
      })),
    )
    const traits = AWKWARD.flatMap((t, i) => [
      { personId: people[i], traits: { text: t, gone: 1 }, receivedAt: '2026-03-01T10:00:00.000Z', seq: 2 * i },
      { personId: people[i], traits: { [t || 'empty']: { nested: t }, gone: null }, receivedAt: '2026-03-01T11:00:00.000Z', seq: 2 * i + 1 },
    ])
    for (const [t, bulk] of [[a, true], [b, false]] as const)
      await t.db.transaction(async (trx) => {
        await trx('people').insert(people.map((person_id) => ({ person_id }))).onConflict().ignore()
        await upsertDeliveries(trx, observations, { bulk })
        await applyTraits(trx, traits, { bulk })
      })
    const deliveries = (t: TestDatabase) => t.db('deliveries').whereIn('person_id', people).orderBy('delivery_id').select('*').then((r) => r.map(({ updated_at, ...d }) => d))
    const attributes = (t: TestDatabase) => t.db('people').whereIn('person_id', people).orderBy('person_id').select('person_id', 'attributes', 'traits_received_at', 'traits_seq')
    expect(await deliveries(a)).toEqual(await deliveries(b))
    expect(await attributes(a)).toEqual(await attributes(b))
    expect(new Set((await attributes(a)).map((p) => p.attributes.text))).toEqual(new Set(AWKWARD))
    expect((await attributes(a)).every((p) => !('gone' in p.attributes))).toBe(true)
  })
})
