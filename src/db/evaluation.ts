import type { Knex } from 'knex'
import type { ConversionRecord, JourneyRecord, MembershipRecord, PersonEvaluation, PersonEvent } from '../core/evaluate-person.ts'
import { JOURNEY_COMPLETED } from '../core/evaluate-person.ts'
import type { EngineConfig } from '../core/model.ts'
import { deliveryFact, type DeliveryEventKind } from '../plugin/delivery-events.ts'
import { unnestRows } from './unnest.ts'

/**
 * Reads people's logs for the rules and writes back what the rules derive,
 * changing only the rows whose content changed.
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
  received_at: Date
}

/** Each person's log in rule order (R2): identifies and the events the configuration can use. */
export async function loadPersonEvents(
  trx: Knex.Transaction | Knex,
  personIds: readonly string[],
  names: readonly string[],
  table: ReadonlyMap<string, DeliveryEventKind>,
): Promise<Map<string, PersonEvent[]>> {
  const byPerson = new Map<string, PersonEvent[]>(personIds.map((id) => [id, []]))
  if (personIds.length === 0) return byPerson
  const { rows } = await trx.raw<{ rows: EventRow[] }>(
    `SELECT person_id, message_id, seq, type, name, properties, received_at
       FROM events
      WHERE person_id = ANY(?::text[]) AND (type = 'identify' OR name = ANY(?::text[]))
      ORDER BY person_id, received_at, seq`,
    [[...personIds], [...names]],
  )
  for (const r of rows) {
    const fact = r.type === 'track' && r.name !== null ? deliveryFact(table, r.name, r.properties) : null
    byPerson.get(r.person_id)!.push({
      messageId: r.message_id,
      seq: r.seq,
      receivedAt: r.received_at.getTime(),
      type: r.type,
      name: r.name,
      properties: r.properties,
      delivery: fact,
    })
  }
  return byPerson
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString())

type Row = Record<string, unknown>

/** Column values compared as text, so a Date read back equals the ISO string written. */
function sameRow(a: Row, b: Row, columns: readonly string[]): boolean {
  const norm = (v: unknown) => (v instanceof Date ? v.toISOString() : v === null || v === undefined ? null : String(v))
  return columns.every((c) => norm(a[c]) === norm(b[c]))
}

/**
 * Makes the rows of `table` for these people (within `scope`) equal `desired`:
 * inserts and updates what differs, deletes what the rules no longer give.
 */
async function syncRows(
  trx: Knex.Transaction,
  spec: { table: string; key: readonly string[]; columns: readonly string[]; types: Record<string, string> },
  existing: readonly Row[],
  desired: readonly Row[],
): Promise<RowChanges> {
  const keyOf = (r: Row) => spec.key.map((k) => (r[k] instanceof Date ? (r[k] as Date).toISOString() : String(r[k]))).join('\u0000')
  const before = new Map(existing.map((r) => [keyOf(r), r]))
  let added = 0
  const changed = desired.filter((r) => {
    const old = before.get(keyOf(r))
    if (!old) added++
    return !old || !sameRow(old, r, spec.columns)
  })
  const wanted = new Set(desired.map(keyOf))
  const gone = existing.filter((r) => !wanted.has(keyOf(r)))
  if (gone.length > 0) {
    const [from, bindings] = unnestRows('g', spec.key, spec.types, gone)
    await trx.raw(
      `DELETE FROM ${spec.table} t USING ${from} WHERE ${spec.key.map((k) => `t.${k} = g.${k}`).join(' AND ')}`,
      bindings,
    )
  }
  if (changed.length > 0) {
    const cols = spec.columns
    const updates = cols.filter((c) => !spec.key.includes(c))
    await trx.raw(
      `INSERT INTO ${spec.table} (${cols.join(', ')})
       SELECT ${cols.join(', ')} FROM jsonb_to_recordset(?::jsonb) AS r(${cols.map((c) => `${c} ${spec.types[c]}`).join(', ')})
       ORDER BY ${spec.key.join(', ')}
       ON CONFLICT (${spec.key.join(', ')}) DO UPDATE SET ${updates.map((c) => `${c} = excluded.${c}`).join(', ')}${
         spec.table === 'segment_memberships' ? '' : ', updated_at = now()'
       }`,
      [JSON.stringify(changed)],
    )
  }
  return { added, changed: changed.length - added, removed: gone.length }
}

const JOURNEYS = {
  table: 'journeys',
  key: ['journey_id'],
  columns: ['journey_id', 'campaign_key', 'person_id', 'entered_at', 'entry_cause', 'entry_message_id', 'goal_version', 'exited_at', 'exit_reason', 'completed_at', 'converted_at'],
  types: { journey_id: 'text', campaign_key: 'text', person_id: 'text', entered_at: 'timestamptz', entry_cause: 'text', entry_message_id: 'text', goal_version: 'int', exited_at: 'timestamptz', exit_reason: 'text', completed_at: 'timestamptz', converted_at: 'timestamptz' },
}
const CONVERSIONS = {
  table: 'conversions',
  key: ['journey_id'],
  columns: ['journey_id', 'campaign_key', 'person_id', 'delivery_id', 'goal_version', 'goal_type', 'event_message_id', 'converted_at', 'anchor_at', 'attributed_via', 'channel', 'value'],
  types: { journey_id: 'text', campaign_key: 'text', person_id: 'text', delivery_id: 'text', goal_version: 'int', goal_type: 'text', event_message_id: 'text', converted_at: 'timestamptz', anchor_at: 'timestamptz', attributed_via: 'text', channel: 'text', value: 'numeric' },
}
const MEMBERSHIPS = {
  table: 'segment_memberships',
  key: ['person_id', 'segment_key', 'joined_at'],
  columns: ['segment_key', 'person_id', 'joined_at', 'left_at', 'join_message_id', 'leave_message_id'],
  types: { segment_key: 'text', person_id: 'text', joined_at: 'timestamptz', left_at: 'timestamptz', join_message_id: 'text', leave_message_id: 'text' },
}

const DELIVERY_ATTRIBUTION_TYPES = { delivery_id: 'text', campaign_key: 'text', journey_id: 'text', after_exit: 'boolean', converted_at: 'timestamptz' }

const journeyRow = (personId: string, j: JourneyRecord): Row => ({
  journey_id: j.journeyId,
  campaign_key: j.campaignKey,
  person_id: personId,
  entered_at: iso(j.enteredAt),
  entry_cause: j.entryCause,
  entry_message_id: j.entryMessageId,
  goal_version: j.goalVersion,
  exited_at: iso(j.exitedAt),
  exit_reason: j.exitReason,
  completed_at: iso(j.completedAt),
  converted_at: iso(j.convertedAt),
})
const conversionRow = (personId: string, c: ConversionRecord): Row => ({
  journey_id: c.journeyId,
  campaign_key: c.campaignKey,
  person_id: personId,
  delivery_id: c.deliveryId,
  goal_version: c.goalVersion,
  goal_type: c.goalType,
  event_message_id: c.eventMessageId,
  converted_at: iso(c.convertedAt),
  anchor_at: iso(c.anchorAt),
  attributed_via: c.attributedVia,
  channel: c.channel,
  value: c.value,
})
const membershipRow = (personId: string, m: MembershipRecord): Row => ({
  segment_key: m.segmentKey,
  person_id: personId,
  joined_at: iso(m.joinedAt),
  left_at: iso(m.leftAt),
  join_message_id: m.joinMessageId,
  leave_message_id: m.leaveMessageId,
})

export interface WriteScope {
  campaignKeys: readonly string[]
  segmentKeys: readonly string[]
  configRevision: number
  now: number
}

export interface RowChanges {
  added: number
  changed: number
  removed: number
}

export interface WriteSummary {
  journeys: RowChanges
  conversions: RowChanges
  memberships: RowChanges
  /** Deliveries whose attribution (campaign, journey, after_exit, converted_at) changed. */
  deliveries: RowChanges
}

export const emptyChanges = (): RowChanges => ({ added: 0, changed: 0, removed: 0 })

/** Adds `b` into `a`, table by table. */
export function addSummary(a: WriteSummary, b: WriteSummary): WriteSummary {
  for (const k of Object.keys(a) as (keyof WriteSummary)[])
    for (const f of ['added', 'changed', 'removed'] as const) a[k][f] += b[k][f]
  return a
}

export const emptySummary = (): WriteSummary => ({
  journeys: emptyChanges(),
  conversions: emptyChanges(),
  memberships: emptyChanges(),
  deliveries: emptyChanges(),
})

/**
 * Writes evaluations of these people. Rows of archived campaigns and segments
 * (outside `scope`) are left as history.
 */
export async function writeEvaluations(
  trx: Knex.Transaction,
  results: ReadonlyMap<string, PersonEvaluation>,
  scope: WriteScope,
): Promise<WriteSummary> {
  const people = [...results.keys()]
  const inScope = new Set(scope.campaignKeys)
  const segmentsInScope = new Set(scope.segmentKeys)
  // Only rows within the scope are compared and written: a recompute of one
  // campaign leaves every other campaign's rows and the segments as they are.
  const flat = <T>(pick: (r: PersonEvaluation) => T[], row: (p: string, x: T) => Row, keep: (x: T) => boolean) =>
    [...results].flatMap(([p, r]) => pick(r).filter(keep).map((x) => row(p, x)))
  // One connection: the reads run one after another.
  // = ANY(array): one statement text whatever the list lengths, so Postgres can reuse its plans.
  const any = (column: string, values: readonly string[]): [string, string[][]] => [`${column} = ANY(?::text[])`, [[...values]]]
  const journeys = await trx('journeys').whereRaw(...any('person_id', people)).whereRaw(...any('campaign_key', scope.campaignKeys))
  const conversions = await trx('conversions').whereRaw(...any('person_id', people)).whereRaw(...any('campaign_key', scope.campaignKeys))
  const memberships = await trx('segment_memberships').whereRaw(...any('person_id', people)).whereRaw(...any('segment_key', scope.segmentKeys))
  const deliveries = await trx('deliveries')
    .select('delivery_id', 'campaign_key', 'journey_id', 'after_exit', 'converted_at')
    .whereRaw(...any('person_id', people))
  const summary = emptySummary()
  summary.journeys = await syncRows(trx, JOURNEYS, journeys, flat((r) => r.journeys, journeyRow, (j) => inScope.has(j.campaignKey)))
  summary.conversions = await syncRows(trx, CONVERSIONS, conversions, flat((r) => r.conversions, conversionRow, (c) => inScope.has(c.campaignKey)))
  summary.memberships = await syncRows(trx, MEMBERSHIPS, memberships, flat((r) => r.memberships, membershipRow, (m) => segmentsInScope.has(m.segmentKey)))

  // Delivery attribution: the rules' view for deliveries of the campaigns in
  // scope; a delivery they no longer place is cleared.
  const placed = new Map<string, Row>()
  for (const r of results.values())
    for (const d of r.deliveries)
      if (inScope.has(d.campaignKey))
        placed.set(d.deliveryId, { delivery_id: d.deliveryId, campaign_key: d.campaignKey, journey_id: d.journeyId, after_exit: d.afterExit, converted_at: iso(d.convertedAt) })
  const cols = ['campaign_key', 'journey_id', 'after_exit', 'converted_at']
  const updates: Row[] = []
  for (const old of deliveries as Row[]) {
    const want = placed.get(old.delivery_id as string)
    if (want) {
      if (!sameRow(old, want, cols)) {
        updates.push(want)
        summary.deliveries[old.journey_id === null ? 'added' : 'changed']++
      }
    } else if (old.campaign_key !== null && inScope.has(old.campaign_key as string)) {
      updates.push({ delivery_id: old.delivery_id, campaign_key: null, journey_id: null, after_exit: false, converted_at: null })
      summary.deliveries.removed++
    }
  }
  if (updates.length > 0) {
    const [from, bindings] = unnestRows('u', ['delivery_id', ...cols], DELIVERY_ATTRIBUTION_TYPES, updates)
    await trx.raw(
      `UPDATE deliveries d
          SET campaign_key = u.campaign_key, journey_id = u.journey_id, after_exit = u.after_exit,
              converted_at = u.converted_at, updated_at = now()
         FROM ${from}
        WHERE d.delivery_id = u.delivery_id`,
      bindings,
    )
  }

  await trx.raw(
    `INSERT INTO person_evaluations (person_id, evaluated_at, config_revision, next_wake_at)
     SELECT person_id, ?, ?, next_wake_at FROM jsonb_to_recordset(?::jsonb) AS r(person_id text, next_wake_at timestamptz)
     ORDER BY person_id
     ON CONFLICT (person_id) DO UPDATE SET evaluated_at = excluded.evaluated_at,
       config_revision = excluded.config_revision, next_wake_at = excluded.next_wake_at`,
    [iso(scope.now), scope.configRevision, JSON.stringify([...results].map(([p, r]) => ({ person_id: p, next_wake_at: iso(r.nextWakeAt) })))],
  )
  return summary
}
