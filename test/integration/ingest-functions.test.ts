import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { foldTraits, type Attributes } from '../../src/core/attributes.ts'
import { lockNamedPeople, lockPeople } from '../../src/db/events.ts'
import { refoldPeople } from '../../src/db/people.ts'
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts'
import { rng } from '../helpers/scenario.ts'
import { waitFor } from '../helpers/wait.ts'

// The server-side pieces of the ingest transaction (migration 000500):
// goalpost_refold_traits must fold exactly as core/attributes.ts foldTraits,
// and goalpost_lock_named_people must lock the people links point to after
// any link change it waited for.

let database: TestDatabase
beforeAll(async () => {
  database = await createTestDatabase()
})
afterAll(async () => {
  await database?.drop()
})
const db = () => database.db

let seq = 0
async function insertEvent(personId: string, type: string, properties: Attributes, receivedAt: string): Promise<void> {
  seq++
  await db()('events').insert({
    message_id: `fn-${personId}-${seq}`,
    person_id: personId,
    user_id: personId,
    type,
    name: type === 'track' ? 'Product Viewed' : null,
    properties: JSON.stringify(properties),
    received_at: receivedAt,
    source: 'api',
  })
}

const at = (s: number) => new Date(Date.UTC(2026, 0, 1) + s * 1000).toISOString()

/** Advisory locks other backends of this database hold, as hashtextextended keys. */
async function advisoryLocksHeldBy(pid: number): Promise<number> {
  const { rows } = await db().raw(
    `SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND pid = ? AND granted`,
    [pid],
  )
  return rows[0].n
}

describe('goalpost_refold_traits', () => {
  const KEYS = ['plan', 'email', 'age', 'address', 'tags']
  const VALUES: unknown[] = [null, 'free', 'pro', 42, 0, true, false, '', { city: 'Oslo', zip: null }, ['a', null], { nested: { deep: 1 } }]

  it('folds every identify in (received_at, seq) order like foldTraits, whatever order they were stored in', async () => {
    for (let s = 1; s <= 40; s++) {
      const r = rng(s)
      const person = `refold-${s}`
      await db()('people').insert({ person_id: person, attributes: JSON.stringify({ stale: true }) })
      const log: { traits: Attributes; t: number; order: number }[] = []
      const n = r.int(1, 8)
      for (let i = 0; i < n; i++) {
        const traits: Attributes = {}
        for (const key of KEYS) if (r.chance(0.5)) traits[key] = r.pick(VALUES)
        // Several share a processing time: seq (insert order) breaks the tie.
        log.push({ traits, t: r.int(0, 3), order: i })
      }
      for (const e of log) await insertEvent(person, 'identify', e.traits, at(e.t))
      // Not identifies: never folded.
      await insertEvent(person, 'track', { plan: 'ignored' }, at(2))
      await insertEvent(person, 'group', { plan: 'ignored' }, at(2))

      await db().transaction((trx) => refoldPeople(trx, [person, person]))

      const ordered = [...log].sort((a, b) => a.t - b.t || a.order - b.order)
      const row = await db()('people').where({ person_id: person }).first('attributes', 'traits_received_at', 'traits_seq')
      expect(row.attributes, `seed ${s}`).toEqual(foldTraits({}, ordered.map((e) => e.traits)))
      const last = ordered[ordered.length - 1]
      expect(row.traits_received_at.toISOString(), `seed ${s}`).toBe(at(last.t))
      const { rows } = await db().raw(
        `SELECT max(seq)::int AS seq FROM events WHERE person_id = ? AND type = 'identify' AND received_at = ?`,
        [person, at(last.t)],
      )
      expect(Number(row.traits_seq), `seed ${s}`).toBe(rows[0].seq)
    }
  })

  it('leaves a person without identifies with no attributes', async () => {
    await db()('people').insert({ person_id: 'refold-none', attributes: JSON.stringify({ left: 'over' }), traits_seq: 7, traits_received_at: at(1) })
    await insertEvent('refold-none', 'track', { plan: 'x' }, at(1))
    await db().transaction((trx) => refoldPeople(trx, ['refold-none']))
    expect(await db()('people').where({ person_id: 'refold-none' }).first('attributes', 'traits_received_at', 'traits_seq')).toEqual({
      attributes: {},
      traits_received_at: null,
      traits_seq: null,
    })
  })
})

describe('goalpost_lock_named_people', () => {
  it('locks the named ids and the people their links point to, and returns them', async () => {
    await db()('identity_links').insert({ anonymous_id: 'lk-anon-1', person_id: 'lk-user-1', linked_at: at(1), linked_seq: 1, message_id: 'lk-1' })
    await db().transaction(async (trx) => {
      const { rows } = await trx.raw(`SELECT id FROM goalpost_lock_named_people(?::text[]) AS id ORDER BY id`, [
        ['lk-anon-1', 'lk-other', 'lk-other'],
      ])
      expect(rows.map((r: { id: string }) => r.id)).toEqual(['lk-anon-1', 'lk-other', 'lk-user-1'])
      const { rows: pid } = await trx.raw('SELECT pg_backend_pid() AS pid')
      expect(await advisoryLocksHeldBy(pid[0].pid)).toBe(3)
    })
  })

  it('after waiting for a lock, also locks the person a link committed meanwhile points to', async () => {
    // A merges lk-anon-2 into lk-user-2 under lk-anon-2's lock; B, naming
    // lk-anon-2, waits for that lock, then must hold lk-user-2's as well.
    const merging = db().transaction()
    const a = await merging
    await lockPeople(a, ['lk-anon-2'])
    await a('identity_links').insert({ anonymous_id: 'lk-anon-2', person_id: 'lk-user-2', linked_at: at(1), linked_seq: 1, message_id: 'lk-2' })

    let bPid = 0
    const b = db().transaction(async (trx) => {
      bPid = (await trx.raw('SELECT pg_backend_pid() AS pid')).rows[0].pid
      await lockNamedPeople(trx, ['lk-anon-2'])
      const held = await advisoryLocksHeldBy(bPid)
      // Held now: no statement for ids the transaction has locked already.
      const statements: string[] = []
      const onQuery = (q: { sql: string }) => statements.push(q.sql)
      db().on('query', onQuery)
      await lockPeople(trx, ['lk-user-2', 'lk-anon-2'])
      await trx.raw('SELECT 1 AS listener_check')
      db().off('query', onQuery)
      return { held, statements }
    })
    await waitFor(
      async () =>
        bPid !== 0 &&
        (await db().raw(`SELECT count(*)::int AS n FROM pg_locks WHERE pid = ? AND locktype = 'advisory' AND NOT granted`, [bPid])).rows[0].n > 0,
      { what: 'B to wait for the lock A holds' },
    )
    await a.commit()
    const { held, statements } = await b
    expect(held).toBe(2) // lk-anon-2 and lk-user-2
    expect(statements).toEqual(['SELECT 1 AS listener_check'])
  })
})
