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
  // One read for what the set-based path needs: the links of every id named
  // (most identifies repeat a link that exists already, and a target may be
  // merged itself) and the ids merged into a candidate (they move with it).
  const froms = [...new Set(candidates.map((r) => r.fromId))]
  const { rows } = await trx.raw<{ rows: { chained: boolean; anonymous_id: string; person_id: string }[] }>(
    `SELECT false AS chained, anonymous_id, person_id FROM identity_links WHERE anonymous_id = ANY(?::text[])
     UNION ALL
     SELECT true, anonymous_id, person_id FROM identity_links WHERE person_id = ANY(?::text[])`,
    [[...new Set([...froms, ...candidates.map((r) => r.toId)])], froms],
  )
  const links = new Map<string, string>()
  const chained = new Map<string, string[]>()
  for (const r of rows) {
    if (!r.chained) links.set(r.anonymous_id, r.person_id)
    else {
      const ids = chained.get(r.person_id)
      if (ids) ids.push(r.anonymous_id)
      else chained.set(r.person_id, [r.anonymous_id])
    }
  }
  const linked = new Set(froms.filter((id) => links.has(id)))
  const fast = await mergeSetBased(trx, candidates, linked, links, chained)
  if (fast) {
    if (fast.length > 0) await refoldPeople(trx, [...new Set(fast.map((m) => m.into))])
    return fast
  }
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

/**
 * Every new link of a batch in one statement (plus a lock when an id is not
 * held yet) instead of eight per link, from the links mergeIdentities read.
 * It applies when the batch's links are independent (no id is both merged and
 * merged into, no link back to itself): then each link's target is what the
 * one-by-one path (mergeOne) would read, and the result is the same. Otherwise
 * it returns null, before writing anything, and the caller goes one by one.
 */
async function mergeSetBased(
  trx: Knex.Transaction,
  candidates: readonly LinkRequest[],
  linked: ReadonlySet<string>,
  links: ReadonlyMap<string, string>,
  chained: ReadonlyMap<string, readonly string[]>,
): Promise<Merge[] | null> {
  const seen = new Set<string>()
  const todo: LinkRequest[] = []
  for (const r of candidates) {
    if (linked.has(r.fromId) || seen.has(r.fromId)) continue
    seen.add(r.fromId)
    todo.push(r)
  }
  if (todo.length === 0) return []
  const rows = todo.map((r) => ({ ...r, into: links.get(r.toId) ?? r.toId }))
  const froms = new Set(rows.map((r) => r.fromId))
  if (rows.some((r) => froms.has(r.into) || froms.has(r.toId) || r.into === r.fromId)) return null
  // Mostly held already: the ids a batch names and their people are locked first.
  await lockPeople(trx, [...rows.map((r) => r.into), ...[...froms].flatMap((f) => chained.get(f) ?? [])])
  await trx.raw(
    `WITH m AS (
       SELECT * FROM unnest(?::text[], ?::text[], ?::timestamptz[], ?::bigint[], ?::text[]) AS m(f, i, at, seq, msg)
     ), ins AS (
       INSERT INTO identity_links (anonymous_id, person_id, linked_at, linked_seq, message_id)
       SELECT f, i, at, seq, msg FROM m ON CONFLICT (anonymous_id) DO NOTHING
     ), ul AS (
       UPDATE identity_links l SET person_id = m.i FROM m WHERE l.person_id = m.f
     ), ue AS (
       UPDATE events e SET person_id = m.i FROM m WHERE e.person_id = m.f
     ), ud AS (
       UPDATE deliveries d SET person_id = m.i, updated_at = now() FROM m WHERE d.person_id = m.f
     ), ip AS (
       INSERT INTO people (person_id) SELECT DISTINCT i FROM m ORDER BY 1 ON CONFLICT DO NOTHING
     )
     DELETE FROM people WHERE person_id IN (SELECT f FROM m)`,
    [
      rows.map((r) => r.fromId),
      rows.map((r) => r.into),
      rows.map((r) => r.receivedAt),
      rows.map((r) => r.seq),
      rows.map((r) => r.messageId),
    ],
  )
  return rows.map((r) => ({ from: r.fromId, into: r.into }))
}
