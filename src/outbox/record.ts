import type { Knex } from 'knex'
import type { OutboundChange } from '../core/config-document/webhooks.ts'
import { unnestRows } from '../db/unnest.ts'
import { destinationsOf, wantsJourneys, type OutboundRouting } from './routing.ts'

/**
 * The write side of the outbox: the changes an evaluation made to conversions
 * and journeys, turned into one row per destination and inserted in the
 * evaluation's own transaction (one statement), so a change is sent if and
 * only if it was committed.
 */

type Row = Record<string, unknown>

/**
 * When a candidate is a change. A replay knows (it read the rows before);
 * an incremental evaluation does not read anything back, so its journey
 * candidates are checked against the stored journey in the INSERT itself,
 * which runs before the journeys are written.
 */
export type ChangeCondition = 'always' | 'journey-new' | 'journey-not-exited'

export interface ChangeCandidate {
  personId: string
  change: OutboundChange
  journeyId: string
  campaignKey: string
  payload: Row
  when: ChangeCondition
}

const iso = (v: unknown) => (v instanceof Date ? v.toISOString() : v === undefined ? null : v)

/** A conversion as sent (CONTRACT.md's columns), from a row written or read back (Dates, numeric as text). */
export function conversionPayload(r: Row): Row {
  return {
    journey_id: r.journey_id,
    campaign_key: r.campaign_key,
    person_id: r.person_id,
    delivery_id: r.delivery_id,
    goal_version: r.goal_version === null || r.goal_version === undefined ? null : Number(r.goal_version),
    goal_type: r.goal_type,
    event_message_id: r.event_message_id ?? null,
    converted_at: iso(r.converted_at),
    anchor_at: iso(r.anchor_at),
    attributed_via: r.attributed_via,
    channel: r.channel,
    value: r.value === null || r.value === undefined ? null : Number(r.value),
  }
}

export function journeyPayload(r: Row): Row {
  return {
    journey_id: r.journey_id,
    campaign_key: r.campaign_key,
    person_id: r.person_id,
    entered_at: iso(r.entered_at),
    entry_cause: r.entry_cause,
    goal_version: r.goal_version === null || r.goal_version === undefined ? null : Number(r.goal_version),
    exited_at: iso(r.exited_at),
    exit_reason: r.exit_reason ?? null,
  }
}

const candidate = (change: OutboundChange, r: Row, payload: Row, when: ChangeCondition = 'always'): ChangeCandidate => ({
  personId: r.person_id as string,
  change,
  journeyId: r.journey_id as string,
  campaignKey: r.campaign_key as string,
  payload,
  when,
})

/** What a sync of one table did, row by row. */
export interface TableDiff {
  added: Row[]
  changed: Array<[before: Row, after: Row]>
  removed: Row[]
}

/**
 * A replay's changes (R3, R5): a conversion added is recorded, one removed is
 * revoked, one that changed (it moved to another delivery, another input, …)
 * is revoked and recorded again. A journey added entered; a journey whose
 * exit appeared exited.
 */
export function replayCandidates(routing: OutboundRouting, conversions: TableDiff, journeys: TableDiff): ChangeCandidate[] {
  const out: ChangeCandidate[] = []
  for (const r of conversions.removed) out.push(candidate('conversion_revoked', r, conversionPayload(r)))
  for (const [before, after] of conversions.changed) {
    out.push(candidate('conversion_revoked', before, conversionPayload(before)))
    out.push(candidate('conversion_recorded', after, conversionPayload(after)))
  }
  for (const r of conversions.added) out.push(candidate('conversion_recorded', r, conversionPayload(r)))
  if (wantsJourneys(routing)) {
    for (const r of journeys.added) {
      out.push(candidate('journey_entered', r, journeyPayload(r)))
      if (r.exited_at !== null) out.push(candidate('journey_exited', r, journeyPayload(r)))
    }
    for (const [before, after] of journeys.changed)
      if (before.exited_at === null && after.exited_at !== null) out.push(candidate('journey_exited', after, journeyPayload(after)))
  }
  return out
}

/**
 * An incremental evaluation's changes: its conversions are all new (R12; a
 * revocation of a credited delivery replays instead); its journeys are new or
 * changed, which the INSERT tells apart against the stored rows.
 */
export function incrementalCandidates(routing: OutboundRouting, conversions: readonly Row[], journeys: readonly Row[]): ChangeCandidate[] {
  const out = conversions.map((r) => candidate('conversion_recorded', r, conversionPayload(r)))
  if (wantsJourneys(routing))
    for (const r of journeys) {
      out.push(candidate('journey_entered', r, journeyPayload(r), 'journey-new'))
      if (r.exited_at !== null) out.push(candidate('journey_exited', r, journeyPayload(r), 'journey-not-exited'))
    }
  return out
}

const TYPES = {
  ord: 'int',
  person_id: 'text',
  destination: 'text',
  change: 'text',
  journey_id: 'text',
  campaign_key: 'text',
  payload: 'jsonb',
  cond: 'text',
}

/**
 * Inserts the candidates that are changes, one row per destination, in
 * order (a revocation before the recording that replaces it). One statement;
 * none when nothing routes anywhere. Returns the rows written.
 */
export async function recordOutbound(trx: Knex.Transaction, routing: OutboundRouting, candidates: readonly ChangeCandidate[]): Promise<number> {
  const rows: Row[] = []
  for (const c of candidates)
    for (const destination of destinationsOf(routing, c.change, c.campaignKey))
      rows.push({
        ord: rows.length,
        person_id: c.personId,
        destination,
        change: c.change,
        journey_id: c.journeyId,
        campaign_key: c.campaignKey,
        payload: JSON.stringify(c.payload),
        cond: c.when,
      })
  if (rows.length === 0) return 0
  const [from, bindings] = unnestRows('c', Object.keys(TYPES), TYPES, rows)
  const result = await trx.raw(
    `INSERT INTO outbox (person_id, destination, change, journey_id, campaign_key, payload)
     SELECT c.person_id, c.destination, c.change, c.journey_id, c.campaign_key, c.payload
       FROM ${from}
      WHERE c.cond = 'always'
         OR (c.cond = 'journey-new' AND NOT EXISTS (SELECT 1 FROM journeys j WHERE j.journey_id = c.journey_id))
         OR (c.cond = 'journey-not-exited'
             AND NOT EXISTS (SELECT 1 FROM journeys j WHERE j.journey_id = c.journey_id AND j.exited_at IS NOT NULL))
      ORDER BY c.ord`,
    bindings,
  )
  const written = (result as { rowCount?: number }).rowCount ?? 0
  if (written > 0 && routing.onCommitted) {
    const notify = routing.onCommitted
    // After the commit, never before: the drain must find the rows.
    trx.executionPromise.then(notify, () => undefined)
  }
  return written
}
