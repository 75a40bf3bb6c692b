import type { Knex } from 'knex'
import type { OutboundChange } from '../core/config-document/webhooks.ts'
import { unnestRows } from '../db/unnest.ts'
import { SEGMENT_DESTINATION } from './routing.ts'

/** The outbox table (migrations/20261203030000_outbox.ts): claims, outcomes, and what operators see. */

export interface OutboxRow {
  id: string
  person_id: string
  destination: string
  change: OutboundChange
  journey_id: string
  campaign_key: string
  payload: Record<string, unknown>
  created_at: Date
  attempts: number
  send_alone: boolean
}

/**
 * The stable id of a change: Segment's `messageId` and the webhooks'
 * `Goalpost-Webhook-Id`. From the journey, the change and the outbox row, so
 * every resend of the row carries it (deduplicated), while a conversion
 * recorded again after a revocation is a new message.
 */
export const messageIdOf = (row: Pick<OutboxRow, 'change' | 'journey_id' | 'id'>) => `goalpost-${row.change}-${row.journey_id}-${row.id}`

/**
 * Claims up to `limit` due rows: their next attempt moves `leaseMs` ahead, so
 * another drain leaves them alone while this one sends; a drain killed while
 * sending leaves them to be claimed again once the lease passes (sent again
 * with the same id). SKIP LOCKED: concurrent drains claim disjoint rows.
 */
export async function claimDue(db: Knex, limit: number, leaseMs: number, includeSegment: boolean): Promise<OutboxRow[]> {
  const { rows } = await db.raw<{ rows: OutboxRow[] }>(
    `UPDATE outbox o
        SET attempts = o.attempts + 1, next_attempt_at = now() + ? * interval '1 millisecond'
       FROM (SELECT person_id, id FROM outbox
              WHERE sent_at IS NULL AND NOT failed_permanently AND next_attempt_at <= now()
                AND (destination <> ? OR ?::boolean)
              ORDER BY next_attempt_at, id
              LIMIT ?
              FOR UPDATE SKIP LOCKED) due
      WHERE o.person_id = due.person_id AND o.id = due.id
      RETURNING o.id::text AS id, o.person_id, o.destination, o.change, o.journey_id, o.campaign_key, o.payload,
                o.created_at, o.attempts, o.send_alone`,
    [leaseMs, SEGMENT_DESTINATION, includeSegment, limit],
  )
  return rows.sort((a, b) => Number(BigInt(a.id) - BigInt(b.id)))
}

/** What became of one attempt. */
export type Outcome =
  | { kind: 'sent' }
  /** Try again after `delayMs`; `alone`: in a batch of its own (a batch was refused). */
  | { kind: 'retry'; error: string; delayMs: number; alone?: boolean }
  /** Never accepted as it is: kept with the reason, retried only by hand. */
  | { kind: 'refused'; error: string }

const OUTCOME_TYPES = { id: 'bigint', person_id: 'text', outcome: 'text', error: 'text', delay_ms: 'bigint', alone: 'boolean' }

/** Records the outcomes and adds them to the per-destination counters, in one transaction. */
export async function recordOutcomes(db: Knex, results: ReadonlyArray<{ row: OutboxRow; outcome: Outcome }>): Promise<void> {
  if (results.length === 0) return
  const rows = results.map(({ row, outcome }) => ({
    id: row.id,
    person_id: row.person_id,
    outcome: outcome.kind,
    error: outcome.kind === 'sent' ? null : outcome.error.slice(0, 2_000),
    delay_ms: outcome.kind === 'retry' ? Math.round(outcome.delayMs) : 0,
    alone: outcome.kind === 'retry' ? Boolean(outcome.alone) : row.send_alone,
  }))
  const counts = new Map<string, { sent: number; failed: number }>()
  for (const { row, outcome } of results) {
    const c = counts.get(row.destination) ?? { sent: 0, failed: 0 }
    if (outcome.kind === 'sent') c.sent++
    else c.failed++
    counts.set(row.destination, c)
  }
  const [from, bindings] = unnestRows('u', Object.keys(OUTCOME_TYPES), OUTCOME_TYPES, rows)
  await db.transaction(async (trx) => {
    await trx.raw(
      `UPDATE outbox o
          SET sent_at = CASE WHEN u.outcome = 'sent' THEN now() END,
              last_error = CASE WHEN u.outcome = 'sent' THEN o.last_error ELSE u.error END,
              next_attempt_at = CASE WHEN u.outcome = 'retry' THEN now() + u.delay_ms * interval '1 millisecond' ELSE o.next_attempt_at END,
              failed_permanently = (u.outcome = 'refused'),
              send_alone = u.alone
         FROM ${from}
        WHERE o.person_id = u.person_id AND o.id = u.id`,
      bindings,
    )
    const destinations = [...counts.keys()].sort()
    await trx.raw(
      `INSERT INTO outbox_counters (destination, sent, failed)
       SELECT * FROM unnest(?::text[], ?::bigint[], ?::bigint[])
       ON CONFLICT (destination) DO UPDATE
         SET sent = outbox_counters.sent + excluded.sent, failed = outbox_counters.failed + excluded.failed`,
      [destinations, destinations.map((d) => counts.get(d)!.sent), destinations.map((d) => counts.get(d)!.failed)],
    )
  })
}

/** Deletes rows sent more than `olderThanMs` ago, a bounded number at a time; how many. */
export async function pruneSent(db: Knex, olderThanMs: number, limit = 10_000): Promise<number> {
  const result = await db.raw(
    `DELETE FROM outbox o USING (
       SELECT person_id, id FROM outbox WHERE sent_at < now() - ? * interval '1 millisecond' LIMIT ?
     ) old WHERE o.person_id = old.person_id AND o.id = old.id`,
    [olderThanMs, limit],
  )
  return (result as { rowCount?: number }).rowCount ?? 0
}

export interface ListOptions {
  status: 'failed' | 'pending'
  destination?: string
  limit: number
}

/** Rows kept as refused (or still waiting), newest first, for `GET /admin/outbox`. */
export async function listOutbox(db: Knex, opts: ListOptions) {
  const q = db('outbox')
    .select('id', 'person_id', 'destination', 'change', 'journey_id', 'campaign_key', 'payload', 'created_at', 'attempts', 'next_attempt_at', 'last_error')
    .whereNull('sent_at')
    .where('failed_permanently', opts.status === 'failed')
    .orderBy('id', 'desc')
    .limit(opts.limit)
  if (opts.destination) q.where('destination', opts.destination)
  const rows = await q
  return rows.map((r) => ({
    id: String(r.id),
    message_id: messageIdOf({ change: r.change, journey_id: r.journey_id, id: String(r.id) }),
    destination: r.destination as string,
    change: r.change as string,
    journey_id: r.journey_id as string,
    campaign_key: r.campaign_key as string,
    person_id: r.person_id as string,
    attempts: r.attempts as number,
    last_error: r.last_error as string | null,
    created_at: (r.created_at as Date).toISOString(),
    next_attempt_at: opts.status === 'pending' ? (r.next_attempt_at as Date).toISOString() : null,
    payload: r.payload as Record<string, unknown>,
  }))
}

/** Makes refused rows due again (all, or these ids, or one destination's); how many. */
export async function retryRefused(db: Knex, filter: { ids?: readonly string[]; destination?: string }): Promise<number> {
  const q = db('outbox').where('failed_permanently', true).whereNull('sent_at')
  if (filter.ids) q.whereRaw('id = ANY(?::bigint[])', [[...filter.ids]])
  if (filter.destination) q.where('destination', filter.destination)
  return q.update({ failed_permanently: false, send_alone: false, attempts: 0, next_attempt_at: db.fn.now() })
}

/** Per destination: rows waiting, the oldest one's age, rows kept as refused; and the counters. */
export async function outboxStatus(db: Knex) {
  const { rows: pending } = await db.raw<{ rows: Array<{ destination: string; pending: string; refused: string; oldest_age: number | null }> }>(
    // Two scans, each within a partial index: the table also holds a week of sent rows.
    `SELECT destination, sum(pending) AS pending, sum(refused) AS refused, max(oldest_age) AS oldest_age FROM (
       SELECT destination, count(*) AS pending, 0 AS refused, extract(epoch FROM now() - min(created_at))::float8 AS oldest_age
         FROM outbox WHERE sent_at IS NULL AND NOT failed_permanently GROUP BY destination
       UNION ALL
       SELECT destination, 0, count(*), NULL FROM outbox WHERE failed_permanently GROUP BY destination
     ) s GROUP BY destination`,
  )
  const counters = await db('outbox_counters').select('destination', 'sent', 'failed')
  return {
    pending: pending.map((r) => ({ destination: r.destination, pending: Number(r.pending), refused: Number(r.refused), oldestAgeSeconds: r.oldest_age })),
    counters: counters.map((c) => ({ destination: c.destination as string, sent: Number(c.sent), failed: Number(c.failed) })),
  }
}
