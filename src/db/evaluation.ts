import type { Knex } from 'knex'
import type { ConversionRecord, DeliveryRecord, JourneyRecord, MembershipRecord, PersonEvaluation } from '../core/evaluate-person.ts'
import { unnestRows } from './unnest.ts'
import type { OutboundRouting } from '../outbox/routing.ts'
import { incrementalCandidates, recordOutbound, replayCandidates, type TableDiff } from '../outbox/record.ts'

/**
 * Reads people's logs for the rules and writes back what the rules derive,
 * changing only the rows whose content changed.
 */

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString())

type Row = Record<string, unknown>

/** Column values compared as text, so a Date read back equals the ISO string written. */
function sameRow(a: Row, b: Row, columns: readonly string[]): boolean {
  const norm = (v: unknown) => (v instanceof Date ? v.toISOString() : v === null || v === undefined ? null : String(v))
  return columns.every((c) => norm(a[c]) === norm(b[c]))
}

type TableSpec = { table: string; key: readonly string[]; columns: readonly string[]; types: Record<string, string> }

/** Inserts or updates rows by their key, in key order (concurrent writers lock rows in one order). */
async function upsertRows(trx: Knex.Transaction, spec: TableSpec, rows: readonly Row[]): Promise<void> {
  if (rows.length === 0) return
  const cols = spec.columns
  const updates = cols.filter((c) => !spec.key.includes(c))
  const [from, bindings] = unnestRows('r', cols, spec.types, rows)
  await trx.raw(
    `INSERT INTO ${spec.table} (${cols.join(', ')})
     SELECT ${cols.join(', ')} FROM ${from}
     ORDER BY ${spec.key.join(', ')}
     ON CONFLICT (${spec.key.join(', ')}) DO UPDATE SET ${updates.map((c) => `${c} = excluded.${c}`).join(', ')}${
       spec.table === 'segment_memberships' ? '' : ', updated_at = now()'
     }`,
    bindings,
  )
}

/**
 * Makes the rows of `table` for these people (within `scope`) equal `desired`:
 * inserts and updates what differs, deletes what the rules no longer give.
 */
async function syncRows(
  trx: Knex.Transaction,
  spec: TableSpec,
  existing: readonly Row[],
  desired: readonly Row[],
): Promise<{ changes: RowChanges; diff: TableDiff }> {
  const keyOf = (r: Row) => spec.key.map((k) => (r[k] instanceof Date ? (r[k] as Date).toISOString() : String(r[k]))).join('\u0000')
  const before = new Map(existing.map((r) => [keyOf(r), r]))
  const diff: TableDiff = { added: [], changed: [], removed: [] }
  const changed = desired.filter((r) => {
    const old = before.get(keyOf(r))
    if (!old) diff.added.push(r)
    else if (!sameRow(old, r, spec.columns)) diff.changed.push([old, r])
    return !old || !sameRow(old, r, spec.columns)
  })
  const added = diff.added.length
  const wanted = new Set(desired.map(keyOf))
  const gone = existing.filter((r) => !wanted.has(keyOf(r)))
  if (gone.length > 0) {
    // Also by person: the row may have moved to the person an identity merge
    // made (R25), whose evaluation in another transaction upserted it after
    // this one read it; then it is theirs and stays.
    const columns = [...new Set([...spec.key, 'person_id'])]
    const [from, bindings] = unnestRows('g', columns, spec.types, gone)
    // RETURNING: what was deleted here is what this evaluation takes back (outbox).
    const { rows } = await trx.raw<{ rows: Row[] }>(
      `DELETE FROM ${spec.table} t USING ${from} WHERE ${columns.map((k) => `t.${k} = g.${k}`).join(' AND ')} RETURNING t.*`,
      bindings,
    )
    diff.removed = rows
  }
  await upsertRows(trx, spec, changed)
  return { changes: { added, changed: changed.length - added, removed: gone.length }, diff }
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
const ATTRIBUTION_COLUMNS = ['campaign_key', 'journey_id', 'after_exit', 'converted_at']

/** Sets deliveries' attribution (the rules' campaign, journey, after_exit and converted_at). */
async function updateAttribution(trx: Knex.Transaction, updates: readonly Row[]): Promise<void> {
  if (updates.length === 0) return
  const [from, bindings] = unnestRows('u', ['delivery_id', ...ATTRIBUTION_COLUMNS], DELIVERY_ATTRIBUTION_TYPES, updates)
  await trx.raw(
    `UPDATE deliveries d
        SET campaign_key = u.campaign_key, journey_id = u.journey_id, after_exit = u.after_exit,
            converted_at = u.converted_at, updated_at = now()
       FROM ${from}
      WHERE d.delivery_id = u.delivery_id`,
    bindings,
  )
}

const attributionRow = (d: DeliveryRecord): Row => ({
  delivery_id: d.deliveryId,
  campaign_key: d.campaignKey,
  journey_id: d.journeyId,
  after_exit: d.afterExit,
  converted_at: iso(d.convertedAt),
})

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
 * Writes replays of these people (every row the rules give them): reads their
 * rows back and inserts, updates and deletes what differs. Rows of archived
 * campaigns and segments (outside `scope`) are left as history.
 */
export async function writeEvaluations(
  trx: Knex.Transaction,
  results: ReadonlyMap<string, PersonEvaluation>,
  scope: WriteScope,
  outbound: OutboundRouting | null = null,
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
  const journeySync = await syncRows(trx, JOURNEYS, journeys, flat((r) => r.journeys, journeyRow, (j) => inScope.has(j.campaignKey)))
  const conversionSync = await syncRows(trx, CONVERSIONS, conversions, flat((r) => r.conversions, conversionRow, (c) => inScope.has(c.campaignKey)))
  summary.journeys = journeySync.changes
  summary.conversions = conversionSync.changes
  summary.memberships = (await syncRows(trx, MEMBERSHIPS, memberships, flat((r) => r.memberships, membershipRow, (m) => segmentsInScope.has(m.segmentKey)))).changes
  // Outbound changes (docs/outbound.md), from exactly what was written: a replay that changes nothing sends nothing.
  if (outbound) await recordOutbound(trx, outbound, replayCandidates(outbound, conversionSync.diff, journeySync.diff))

  // Delivery attribution: the rules' view for deliveries of the campaigns in
  // scope; a delivery they no longer place is cleared.
  const placed = new Map<string, Row>()
  for (const r of results.values())
    for (const d of r.deliveries)
      if (inScope.has(d.campaignKey)) placed.set(d.deliveryId, attributionRow(d))
  const cols = ATTRIBUTION_COLUMNS
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
  await updateAttribution(trx, updates)
  return summary
}

/**
 * Writes incremental evaluations: their rows are exactly the ones the inputs
 * folded in created or changed (known from the fold itself), so they are
 * upserted without reading anything back, and nothing is deleted (an input
 * after the watermark never takes back what came before it; the inputs that
 * would make the engine replay instead, R3, R5, R25).
 */
export async function writeIncremental(
  trx: Knex.Transaction,
  results: ReadonlyMap<string, PersonEvaluation>,
  outbound: OutboundRouting | null = null,
): Promise<WriteSummary> {
  const summary = emptySummary()
  const journeys: Row[] = []
  const conversions: Row[] = []
  const memberships: Row[] = []
  const deliveries: Row[] = []
  for (const [p, r] of results) {
    for (const j of r.journeys) journeys.push(journeyRow(p, j))
    for (const c of r.conversions) conversions.push(conversionRow(p, c))
    for (const m of r.memberships) memberships.push(membershipRow(p, m))
    for (const d of r.deliveries) deliveries.push(attributionRow(d))
    const count = (changes: RowChanges, rows: number, created: number) => {
      changes.added += created
      changes.changed += rows - created
    }
    count(summary.journeys, r.journeys.length, r.created.journeys)
    count(summary.conversions, r.conversions.length, r.conversions.length)
    count(summary.memberships, r.memberships.length, r.created.memberships)
    count(summary.deliveries, r.deliveries.length, r.created.deliveries)
  }
  // Outbound changes (docs/outbound.md): before the journeys are written, so
  // the INSERT can tell a journey entered or exited now from one stored already.
  if (outbound && (conversions.length > 0 || journeys.length > 0))
    await recordOutbound(trx, outbound, incrementalCandidates(outbound, conversions, journeys))
  await upsertRows(trx, JOURNEYS, journeys)
  await upsertRows(trx, CONVERSIONS, conversions)
  await upsertRows(trx, MEMBERSHIPS, memberships)
  await updateAttribution(trx, deliveries)
  return summary
}
