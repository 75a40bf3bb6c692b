import type { Knex } from 'knex'
import type { Attributes } from '../core/attributes.ts'
import { unnestRows } from './unnest.ts'
import { stageRows } from './copy.ts'

export interface TraitUpdate {
  personId: string
  traits: Attributes
  receivedAt: string
  seq: number
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
export async function applyTraits(trx: Knex.Transaction, updates: readonly TraitUpdate[], opts: { bulk?: boolean } = {}): Promise<void> {
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
  const columns = ['person_id', 'delta', 'first_at', 'first_seq', 'last_at', 'last_seq']
  const types = { person_id: 'text', delta: 'jsonb', first_at: 'timestamptz', first_seq: 'bigint', last_at: 'timestamptz', last_seq: 'bigint' }
  const deltas = ids.map((id, i) => {
    const list = lists[i]
    const [first, last] = [list[0], list[list.length - 1]]
    return { person_id: id, delta: JSON.stringify(delta(list)), first_at: first.receivedAt, first_seq: first.seq, last_at: last.receivedAt, last_seq: last.seq }
  })
  // bulk (import): the rows reach Postgres by COPY into a staging table emptied at commit.
  const [from, bindings] = opts.bulk ? await stageRows(trx, 'goalpost_staged_traits', 'r', columns, types, deltas) : unnestRows('r', columns, types, deltas)
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

/**
 * Recomputes people's attributes from every identify in their log, in rule
 * order (R2), in one round trip: goalpost_refold_traits (migration 000500)
 * locks the rows, then folds the log as foldTraits does.
 */
export async function refoldPeople(trx: Knex.Transaction, personIds: readonly string[]): Promise<void> {
  if (personIds.length === 0) return
  await trx.raw(`SELECT goalpost_refold_traits(?::text[])`, [[...new Set(personIds)]])
}
