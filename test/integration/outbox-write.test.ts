/**
 * The outbox on the write path (docs/outbound.md, "Cost on the ingest path"):
 * with nothing configured the evaluation writes no statement more; with a
 * destination, one INSERT per transaction; a replay that changes nothing
 * records nothing, one that removes or changes a conversion records its
 * revocation.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Knex } from 'knex'
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts'
import { writeEvaluations, writeIncremental } from '../../src/db/evaluation.ts'
import type { PersonEvaluation } from '../../src/core/evaluate-person.ts'
import { outboundRouting } from '../../src/outbox/routing.ts'

let database: TestDatabase
beforeAll(async () => {
  database = await createTestDatabase()
})
afterAll(async () => {
  await database?.drop()
})

const T = Date.parse('2026-03-01T11:00:00Z')

/** One person's evaluation: a journey converted on `delivery`. */
function evaluation(person: string, delivery: string | null, mode: 'incremental' | 'replay'): PersonEvaluation {
  const journeyId = `j-${person}`
  return {
    mode,
    memberships: [],
    journeys: [{ journeyId, campaignKey: 'cart', enteredAt: T - 3_600_000, entryCause: 'event_trigger', entryMessageId: `m-${person}`, goalVersion: 1, exitedAt: null, exitReason: null, completedAt: null, convertedAt: delivery ? T : null }],
    deliveries: [],
    conversions: delivery
      ? [{ journeyId, campaignKey: 'cart', deliveryId: delivery, goalVersion: 1, goalType: 'event', eventMessageId: `o-${person}`, convertedAt: T, anchorAt: T - 60_000, attributedVia: 'delivered', channel: 'email', value: 12.5 }]
      : [],
    decisions: [],
    created: { memberships: 0, journeys: 1, deliveries: 0 },
    nextWakeAt: null,
  } as unknown as PersonEvaluation
}

/** The statements a write runs, in a transaction of its own. */
async function statementsOf(write: (trx: Knex.Transaction) => Promise<unknown>): Promise<string[]> {
  const sql: string[] = []
  const listen = (q: { sql: string }) => sql.push(q.sql)
  database.db.on('query', listen)
  try {
    await database.db.transaction(write)
  } finally {
    database.db.off('query', listen)
  }
  return sql.filter((s) => !/^(BEGIN|COMMIT|ROLLBACK)/i.test(s.trim()))
}

const outbox = () => database.db('outbox').orderBy('id').select('person_id', 'destination', 'change', 'journey_id', 'payload')
const scope = { campaignKeys: ['cart'], segmentKeys: [] }

describe('the outbox on the write path', () => {
  it('adds no statement when nothing is configured', async () => {
    const results = new Map([['a1', evaluation('a1', 'd1', 'incremental')]])
    const without = await statementsOf((trx) => writeIncremental(trx, results, null))
    expect(without.some((s) => /outbox/i.test(s))).toBe(false)
    expect(await outbox()).toEqual([])
  })

  it('adds one INSERT per transaction with a destination, however many conversions', async () => {
    const routing = outboundRouting(true, [])
    const results = new Map(['b1', 'b2', 'b3'].map((p) => [p, evaluation(p, `${p}-d`, 'incremental')]))
    const withForward = await statementsOf((trx) => writeIncremental(trx, results, routing))
    expect(withForward.filter((s) => /outbox/i.test(s))).toEqual([expect.stringMatching(/^INSERT INTO outbox/)])
    expect((await outbox()).map((r) => [r.person_id, r.destination, r.change, r.payload.delivery_id, r.payload.value])).toEqual([
      ['b1', 'segment', 'conversion_recorded', 'b1-d', 12.5],
      ['b2', 'segment', 'conversion_recorded', 'b2-d', 12.5],
      ['b3', 'segment', 'conversion_recorded', 'b3-d', 12.5],
    ])
  })

  it('R3: a replay that gives the stored rows records nothing; one that moves or removes a conversion records what changed', async () => {
    const routing = outboundRouting(true, [])
    const before = (await outbox()).length
    await database.db.transaction((trx) => writeEvaluations(trx, new Map([['b1', evaluation('b1', 'b1-d', 'replay')]]), scope, routing))
    expect((await outbox()).length).toBe(before)
    await database.db.transaction((trx) =>
      writeEvaluations(trx, new Map([['b1', evaluation('b1', 'b1-other', 'replay')], ['b2', evaluation('b2', null, 'replay')]]), scope, routing),
    )
    expect((await outbox()).slice(before).map((r) => [r.person_id, r.change, r.payload.delivery_id])).toEqual([
      ['b2', 'conversion_revoked', 'b2-d'],
      ['b1', 'conversion_revoked', 'b1-d'],
      ['b1', 'conversion_recorded', 'b1-other'],
    ])
  })

  it('tells journeys entered and exited apart from journeys stored already, in the INSERT itself', async () => {
    const routing = outboundRouting(false, [{ name: 'j', url: 'https://x', events: ['journey_entered', 'journey_exited'], secretEnv: 'X' }])
    const before = (await outbox()).length
    const fresh = evaluation('c1', null, 'incremental')
    await database.db.transaction((trx) => writeIncremental(trx, new Map([['c1', fresh]]), routing))
    // The same journey again, now exited: only the exit is new.
    const exited = evaluation('c1', null, 'incremental')
    exited.journeys[0].exitedAt = T
    exited.journeys[0].exitReason = 'unmatch'
    await database.db.transaction((trx) => writeIncremental(trx, new Map([['c1', exited]]), routing))
    await database.db.transaction((trx) => writeIncremental(trx, new Map([['c1', exited]]), routing))
    expect((await outbox()).slice(before).map((r) => [r.destination, r.change, r.payload.exit_reason])).toEqual([
      ['webhook:j', 'journey_entered', null],
      ['webhook:j', 'journey_exited', 'unmatch'],
    ])
  })
})
