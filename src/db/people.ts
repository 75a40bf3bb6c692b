import type { Knex } from 'knex'
import { foldTraits, type Attributes } from '../core/attributes.ts'

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

const isAfter = (u: TraitUpdate, p: PersonTraits) =>
  p.traits_received_at === null ||
  Date.parse(u.receivedAt) > p.traits_received_at.getTime() ||
  (Date.parse(u.receivedAt) === p.traits_received_at.getTime() && u.seq > (p.traits_seq ?? 0))

/**
 * Applies identify traits (shallow merge, null removes). Updates later than
 * everything already folded in are merged directly; a late identify (R3) makes
 * the person's attributes be folded again from the log, so arrival order never
 * changes the result.
 */
export async function applyTraits(trx: Knex.Transaction, updates: readonly TraitUpdate[]): Promise<void> {
  if (updates.length === 0) return
  const byPerson = new Map<string, TraitUpdate[]>()
  for (const u of updates) byPerson.set(u.personId, [...(byPerson.get(u.personId) ?? []), u])
  // FOR UPDATE: callers hold the person's advisory lock (lockNamedPeople);
  // the row lock keeps a read-modify-write of attributes safe even for a
  // caller that does not (a lost update otherwise: two folds, one kept).
  const { rows } = await trx.raw<{ rows: PersonTraits[] }>(
    `SELECT person_id, attributes, traits_received_at, traits_seq FROM people
      WHERE person_id = ANY(?::text[]) ORDER BY person_id FOR UPDATE`,
    [[...byPerson.keys()]],
  )
  const merged: PersonTraits[] = []
  const refold: string[] = []
  for (const person of rows) {
    const list = byPerson.get(person.person_id)!.sort(
      (a, b) => Date.parse(a.receivedAt) - Date.parse(b.receivedAt) || a.seq - b.seq,
    )
    if (!isAfter(list[0], person)) {
      refold.push(person.person_id)
      continue
    }
    const last = list[list.length - 1]
    merged.push({
      person_id: person.person_id,
      attributes: foldTraits(person.attributes, list.map((u) => u.traits)),
      traits_received_at: new Date(last.receivedAt),
      traits_seq: last.seq,
    })
  }
  await writeTraits(trx, merged)
  await refoldPeople(trx, refold)
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
  await trx.raw(
    `UPDATE people p
        SET attributes = r.attributes, traits_received_at = r.traits_received_at, traits_seq = r.traits_seq,
            updated_at = now()
       FROM jsonb_to_recordset(?::jsonb) AS r(person_id text, attributes jsonb, traits_received_at timestamptz,
                                             traits_seq bigint)
      WHERE p.person_id = r.person_id`,
    [JSON.stringify(people)],
  )
}
