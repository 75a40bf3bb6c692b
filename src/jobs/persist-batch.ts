import type { Knex } from 'knex'
import { deliveryFact, type DeliveryEventKind } from '../plugin/delivery-events.ts'
import type { IngestMessage } from '../plugin/normalise.ts'
import { insertEvents, lockNamedPeople, type Source } from '../db/events.ts'
import { applyTraits, ensurePeople } from '../db/people.ts'
import { mergeIdentities, type Merge } from '../db/identities.ts'
import { upsertDeliveries, type DeliveryObservation } from '../db/deliveries.ts'

export interface PersistOutcome {
  /** Messages new to the log. */
  inserted: number
  /** Messages whose messageId was already in the log (ignored, idempotent). */
  duplicates: number
  /** Every person whose log changed: what the evaluation must look at. */
  people: string[]
  merges: Merge[]
  deliveries: number
}

/**
 * Persists one batch in one transaction: the log, people and their traits,
 * identity merges (R25) and delivery lifecycles (R4). Only messages new to the
 * log have effects, so running the same batch again, or concurrently, changes
 * nothing (idempotent under BullMQ retries and stalled-job re-runs).
 */
export async function persistBatch(
  db: Knex,
  source: Source,
  messages: readonly IngestMessage[],
  deliveryTable: ReadonlyMap<string, DeliveryEventKind>,
): Promise<PersistOutcome> {
  return db.transaction(async (trx) => {
    await lockNamedPeople(
      trx,
      messages.flatMap((m) => [m.userId, m.anonymousId, m.meta?.previousId].filter((id): id is string => !!id)),
    )
    const events = await insertEvents(trx, source, messages)
    const people = new Set(events.map((e) => e.personId))
    await ensurePeople(trx, people)

    const observations: DeliveryObservation[] = []
    for (const e of events) {
      if (e.message.type !== 'track' || e.message.name === null) continue
      const fact = deliveryFact(deliveryTable, e.message.name, e.message.properties)
      if (fact && fact.step !== 'recorded')
        observations.push({ fact, personId: e.personId, receivedAt: e.message.receivedAt, seq: e.seq })
    }
    await upsertDeliveries(trx, observations)

    await applyTraits(
      trx,
      events
        .filter((e) => e.message.type === 'identify')
        .map((e) => ({ personId: e.personId, traits: e.message.properties, receivedAt: e.message.receivedAt, seq: e.seq })),
    )

    const merges = await mergeIdentities(
      trx,
      events.flatMap((e) => {
        const m = e.message
        const fromId = m.type === 'alias' ? m.meta?.previousId : m.type === 'identify' ? m.anonymousId : null
        return fromId && m.userId
          ? [{ fromId, toId: m.userId, receivedAt: m.receivedAt, seq: e.seq, messageId: m.messageId }]
          : []
      }),
    )
    for (const { from, into } of merges) {
      people.delete(from)
      people.add(into)
    }
    return {
      inserted: events.length,
      duplicates: messages.length - events.length,
      people: [...people],
      merges,
      deliveries: observations.length,
    }
  })
}
