import type { Knex } from 'knex'
import type { PersonEvent } from '../core/evaluate-person.ts'
import { JOURNEY_COMPLETED } from '../core/evaluate-person.ts'
import type { EngineConfig } from '../core/model.ts'
import { deliveryFact, type DeliveryEventKind } from '../segment/delivery-events.ts'

/**
 * Reading people's logs for the rules: the inputs the configuration can use,
 * in rule order (R2), either whole (replay) or after a stored state's
 * watermark (incremental evaluation).
 */

/** Event names that can matter to the configuration: everything else in a log is skipped. */
export function relevantEventNames(config: EngineConfig, table: ReadonlyMap<string, DeliveryEventKind>): string[] {
  const names = new Set<string>([JOURNEY_COMPLETED, ...table.keys()])
  const fromConditions = (conditions: ReadonlyArray<{ kind: string; event?: string }> | undefined) => {
    for (const c of conditions ?? []) if (c.kind === 'event' && c.event) names.add(c.event)
  }
  for (const s of config.segments) fromConditions(s.conditions)
  for (const c of config.campaigns) {
    fromConditions(c.filters?.conditions)
    if (c.trigger?.kind === 'event') names.add(c.trigger.event)
    for (const v of c.goals) if (v.goal?.kind === 'event') names.add(v.goal.event)
  }
  return [...names]
}

interface EventRow {
  person_id: string
  message_id: string
  seq: number
  type: string
  name: string | null
  properties: Record<string, unknown>
  /** Epoch milliseconds (float8): no date string to parse per row. */
  received_ms: number
}

/** One input as the rules see it: its processing time and, for a lifecycle event, the delivery it names (R4). */
export function personEvent(
  table: ReadonlyMap<string, DeliveryEventKind>,
  e: { messageId: string; seq: number; receivedAt: number; type: string; name: string | null; properties: Record<string, unknown> },
): PersonEvent {
  const fact = e.type === 'track' && e.name !== null ? deliveryFact(table, e.name, e.properties) : null
  return { ...e, delivery: fact }
}

function collect(rows: readonly EventRow[], byPerson: Map<string, PersonEvent[]>, table: ReadonlyMap<string, DeliveryEventKind>) {
  for (const r of rows)
    byPerson.get(r.person_id)!.push(
      personEvent(table, { messageId: r.message_id, seq: r.seq, receivedAt: r.received_ms, type: r.type, name: r.name, properties: r.properties }),
    )
  return byPerson
}

/** Each person's whole log in rule order (R2): identifies and the events the configuration can use. */
export async function loadPersonEvents(
  trx: Knex.Transaction | Knex,
  personIds: readonly string[],
  names: readonly string[],
  table: ReadonlyMap<string, DeliveryEventKind>,
): Promise<Map<string, PersonEvent[]>> {
  const byPerson = new Map<string, PersonEvent[]>(personIds.map((id) => [id, []]))
  if (personIds.length === 0) return byPerson
  const { rows } = await trx.raw<{ rows: EventRow[] }>(
    `SELECT person_id, message_id, seq, type, name, properties, (extract(epoch FROM received_at) * 1000)::float8 AS received_ms
       FROM events
      WHERE person_id = ANY(?::text[]) AND (type = 'identify' OR name = ANY(?::text[]))
      ORDER BY person_id, received_at, seq`,
    [[...personIds], [...names]],
  )
  return collect(rows, byPerson, table)
}

/**
 * Each person's inputs after a watermark (processing time, seq) in rule order:
 * an index range on events_person_time, so the cost does not grow with the
 * history before the watermark. A null watermark reads the whole log.
 */
export async function loadEventsAfter(
  trx: Knex.Transaction | Knex,
  watermarks: ReadonlyMap<string, { at: number | null; seq: number | null }>,
  names: readonly string[],
  table: ReadonlyMap<string, DeliveryEventKind>,
): Promise<Map<string, PersonEvent[]>> {
  const byPerson = new Map<string, PersonEvent[]>([...watermarks.keys()].map((id) => [id, []]))
  if (watermarks.size === 0) return byPerson
  const ids = [...watermarks.keys()]
  const { rows } = await trx.raw<{ rows: EventRow[] }>(
    `SELECT e.person_id, e.message_id, e.seq, e.type, e.name, e.properties, (extract(epoch FROM e.received_at) * 1000)::float8 AS received_ms
       FROM unnest(?::text[], ?::timestamptz[], ?::bigint[]) AS w(person_id, at, seq)
       JOIN events e ON e.person_id = w.person_id
        AND (e.received_at, e.seq) > (coalesce(w.at, '-infinity'), coalesce(w.seq, 0))
      WHERE e.type = 'identify' OR e.name = ANY(?::text[])
      ORDER BY e.person_id, e.received_at, e.seq`,
    [
      ids,
      ids.map((id) => {
        const at = watermarks.get(id)!.at
        return at === null ? null : new Date(at).toISOString()
      }),
      ids.map((id) => watermarks.get(id)!.seq),
      [...names],
    ] as Knex.RawBinding[],
  )
  return collect(rows, byPerson, table)
}
