import type { Knex } from 'knex'
import { foldTraits, type Attributes } from '../core/attributes.ts'
import { unnestRows } from './unnest.ts'

export interface TraitUpdate {
  personId: string
  traits: Attributes
  receivedAt: string
  seq: number
}

interface PersonTraits {
  person_id: string
  attributes: Attributes
  traits_received_at: Date | null
  traits_seq: number | null
}

/**
 * The updates of one person folded into one delta, in processing order: the
 * last value named for a key wins, and a null stays null (it means "remove").
 */
function delta(updates: readonly TraitUpdate[]): Attributes {
  const d: Attributes = {}
  for (const u of updates) Object.assign(d, u.traits)
  return d
}

/**
 * Applies identify traits (shallow merge, null removes) in one statement.
 * Updates later than everything already folded into a person are merged
 * directly (the same fold as foldTraits: the delta onto the attributes, then
 * the keys it sets to null removed); a late identify (R3) leaves the row
 * alone and the person's attributes are folded again from the log, so arrival
 * order never changes the result. The UPDATE takes the rows' locks, so the
 * read-modify-write is safe even for a caller that holds no advisory lock.
 */
export async function applyTraits(trx: Knex.Transaction, updates: readonly TraitUpdate[]): Promise<void> {
  if (updates.length === 0) return
  const byPerson = new Map<string, TraitUpdate[]>()
  for (const u of updates) {
    const list = byPerson.get(u.personId)
    if (list) list.push(u)
    else byPerson.set(u.personId, [u])
  }
  const ids = [...byPerson.keys()].sort()
  const lists = ids.map((id) =>
    byPerson.get(id)!.sort((a, b) => Date.parse(a.receivedAt) - Date.parse(b.receivedAt) || a.seq - b.seq),
  )
  const [from, bindings] = unnestRows(
    'r',
    ['person_id', 'delta', 'first_at', 'first_seq', 'last_at', 'last_seq'],
    { person_id: 'text', delta: 'jsonb', first_at: 'timestamptz', first_seq: 'bigint', last_at: 'timestamptz', last_seq: 'bigint' },
    ids.map((id, i) => {
      const list = lists[i]
      const [first, last] = [list[0], list[list.length - 1]]
      return { person_id: id, delta: JSON.stringify(delta(list)), first_at: first.receivedAt, first_seq: first.seq, last_at: last.receivedAt, last_seq: last.seq }
    }),
  )
  const { rows } = await trx.raw<{ rows: { person_id: string }[] }>(
    `UPDATE people p
        SET attributes = coalesce((SELECT jsonb_object_agg(key, value) FROM jsonb_each(p.attributes || r.delta)
                                    WHERE value <> 'null'::jsonb), '{}'::jsonb),
            traits_received_at = r.last_at, traits_seq = r.last_seq, updated_at = now()
       FROM ${from}
      WHERE p.person_id = r.person_id
        AND (p.traits_received_at IS NULL OR (p.traits_received_at, p.traits_seq) < (r.first_at, r.first_seq))
      RETURNING p.person_id`,
    bindings,
  )
  const applied = new Set(rows.map((r) => r.person_id))
  await refoldPeople(
    trx,
    ids.filter((id) => !applied.has(id)),
  )
}

/** Recomputes people's attributes from every identify in their log, in rule order (R2). */
export async function refoldPeople(trx: Knex.Transaction, personIds: readonly string[]): Promise<void> {
  if (personIds.length === 0) return
  // Lock the rows before reading the log: a concurrent batch folding into the
  // same person has then either committed its identifies (and we read them) or
  // waits and folds on top of what we write.
  await trx.raw(`SELECT 1 FROM people WHERE person_id = ANY(?::text[]) ORDER BY person_id FOR UPDATE`, [[...personIds]])
  const { rows } = await trx.raw<{ rows: { person_id: string; properties: Attributes; received_at: Date; seq: number }[] }>(
    `SELECT person_id, properties, received_at, seq FROM events
      WHERE person_id = ANY(?::text[]) AND type = 'identify'
      ORDER BY person_id, received_at, seq`,
    [[...personIds]],
  )
  const folded = new Map<string, PersonTraits>(
    personIds.map((id) => [id, { person_id: id, attributes: {}, traits_received_at: null, traits_seq: null }]),
  )
  for (const r of rows) {
    const p = folded.get(r.person_id)!
    p.attributes = foldTraits(p.attributes, [r.properties])
    p.traits_received_at = r.received_at
    p.traits_seq = r.seq
  }
  await writeTraits(trx, [...folded.values()])
}

async function writeTraits(trx: Knex.Transaction, people: readonly PersonTraits[]): Promise<void> {
  if (people.length === 0) return
  const [from, bindings] = unnestRows(
    'r',
    ['person_id', 'attributes', 'traits_received_at', 'traits_seq'],
    { person_id: 'text', attributes: 'jsonb', traits_received_at: 'timestamptz', traits_seq: 'bigint' },
    people.map((p) => ({ ...p, attributes: JSON.stringify(p.attributes), traits_received_at: p.traits_received_at?.toISOString() ?? null })),
  )
  await trx.raw(
    `UPDATE people p
        SET attributes = r.attributes, traits_received_at = r.traits_received_at, traits_seq = r.traits_seq,
            updated_at = now()
       FROM ${from}
      WHERE p.person_id = r.person_id`,
    bindings,
  )
}
