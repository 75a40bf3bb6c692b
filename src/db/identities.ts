import type { Knex } from 'knex'
import { lockPeople } from './events.ts'
import { refoldPeople } from './people.ts'

export interface LinkRequest {
  /** The anonymousId of an identify, or the previousId of an alias. */
  fromId: string
  /** The userId it belongs to. */
  toId: string
  receivedAt: string
  seq: number
  messageId: string
}

export interface Merge {
  from: string
  into: string
}

/**
 * R25: merges anonymous people into known ones. The merged id's events,
 * deliveries and links move to the person it now belongs to (so every table
 * stays keyed by the person the rules see), and the person's attributes are
 * folded again from the whole, merged log.
 *
 * An id is merged once: it belongs to the first person it was linked to in
 * persist order; a later identify naming another userId (a shared device)
 * does not move its history.
 */
export async function mergeIdentities(trx: Knex.Transaction, requests: readonly LinkRequest[]): Promise<Merge[]> {
  const candidates = requests.filter((r) => r.fromId !== r.toId)
  if (candidates.length === 0) return []
  // Most identifies repeat a link that exists already; one read filters them out.
  const { rows: known } = await trx.raw<{ rows: { anonymous_id: string }[] }>(
    `SELECT anonymous_id FROM identity_links WHERE anonymous_id = ANY(?::text[])`,
    [candidates.map((r) => r.fromId)],
  )
  const linked = new Set(known.map((r) => r.anonymous_id))
  const merges: Merge[] = []
  for (const r of candidates) {
    if (linked.has(r.fromId)) continue
    const merge = await mergeOne(trx, r)
    linked.add(r.fromId)
    if (merge) merges.push(merge)
  }
  if (merges.length > 0) await refoldPeople(trx, [...new Set(merges.map((m) => m.into))])
  return merges
}

async function mergeOne(trx: Knex.Transaction, r: LinkRequest): Promise<Merge | null> {
  const { rows } = await trx.raw<{ rows: { person_id: string }[] }>(
    `SELECT person_id FROM identity_links WHERE anonymous_id = ?`,
    [r.toId],
  )
  const into = rows[0]?.person_id ?? r.toId
  if (into === r.fromId) return null // an alias back to itself would make a cycle
  // Ids already merged into the one being merged move too; lock them so no
  // concurrent batch appends under the old person meanwhile.
  const { rows: chained } = await trx.raw<{ rows: { anonymous_id: string }[] }>(
    `SELECT anonymous_id FROM identity_links WHERE person_id = ?`,
    [r.fromId],
  )
  await lockPeople(trx, [into, ...chained.map((c) => c.anonymous_id)])
  await trx.raw(
    `INSERT INTO identity_links (anonymous_id, person_id, linked_at, linked_seq, message_id)
     VALUES (?, ?, ?, ?, ?) ON CONFLICT (anonymous_id) DO NOTHING`,
    [r.fromId, into, r.receivedAt, r.seq, r.messageId],
  )
  await trx.raw(`UPDATE identity_links SET person_id = ? WHERE person_id = ?`, [into, r.fromId])
  await trx.raw(`UPDATE events SET person_id = ? WHERE person_id = ?`, [into, r.fromId])
  await trx.raw(`UPDATE deliveries SET person_id = ?, updated_at = now() WHERE person_id = ?`, [into, r.fromId])
  await trx.raw(`INSERT INTO people (person_id) VALUES (?) ON CONFLICT DO NOTHING`, [into])
  await trx.raw(`DELETE FROM people WHERE person_id = ?`, [r.fromId])
  return { from: r.fromId, into }
}
