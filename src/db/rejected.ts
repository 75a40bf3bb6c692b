import type { Knex } from 'knex'
import type { Source } from './events.ts'

export interface Rejection {
  messageId: string | null
  receivedAt: string | null
  reason: string
  payload: unknown
}

/** SQLSTATE class 22: a value Postgres refuses (out of range, bad format…). */
const isDataException = (err: unknown) => String((err as { code?: unknown })?.code ?? '').startsWith('22')

/**
 * Keeps messages that can never be stored, with their reason (never retried
 * automatically, never dropped; `goalpost rejected replay` queues them again
 * once the cause is fixed).
 */
export async function recordRejected(db: Knex, source: Source, rejections: readonly Rejection[]): Promise<void> {
  if (rejections.length === 0) return
  try {
    await insertRejections(db, source, rejections)
  } catch (err) {
    if (!isDataException(err)) throw err
    // The refused value may be the message's own receivedAt (a webhook's, say):
    // keep it in the payload only, or the rejection would be refused as well
    // and the job retried forever.
    await insertRejections(db, source, rejections.map((r) => ({ ...r, receivedAt: null })))
  }
}

async function insertRejections(db: Knex, source: Source, rejections: readonly Rejection[]): Promise<void> {
  await db('rejected_messages')
    .insert(
      rejections.map((r) => ({
        message_id: r.messageId,
        source,
        received_at: r.receivedAt,
        reason: r.reason,
        // text, not jsonb: whatever made the message unstorable as jsonb may be in it.
        payload: JSON.stringify(r.payload),
      })),
    )
    // One row per message (a retried job records a rejection once); refused
    // again after a replay, it is pending again, with the latest reason.
    .onConflict('message_id')
    .merge({ reason: db.raw('excluded.reason'), rejected_at: db.raw('excluded.rejected_at'), replayed_at: null })
}

/** Which dead letters a list or a replay takes. */
export interface RejectedFilter {
  /** Text the reason contains, case-insensitively (a SQLSTATE, a column…). */
  reason?: string
  /** Rejected at or after this instant. */
  since?: Date
  /** Also those already replayed (listing only: a replay never takes them). */
  includeReplayed?: boolean
}

export interface RejectedRow {
  id: number
  messageId: string | null
  source: Source
  /** The processing time (R1), when Postgres could store it. */
  receivedAt: string | null
  rejectedAt: string
  reason: string
  replayedAt: string | null
}

interface Row {
  id: number
  message_id: string | null
  source: Source
  received_at: Date | null
  rejected_at: Date
  reason: string
  replayed_at: Date | null
  payload?: string
}

const COLUMNS = ['id', 'message_id', 'source', 'received_at', 'rejected_at', 'reason', 'replayed_at']

const toRow = (r: Row): RejectedRow => ({
  id: r.id,
  messageId: r.message_id,
  source: r.source,
  receivedAt: r.received_at?.toISOString() ?? null,
  rejectedAt: r.rejected_at.toISOString(),
  reason: r.reason,
  replayedAt: r.replayed_at?.toISOString() ?? null,
})

function matching(db: Knex | Knex.Transaction, f: RejectedFilter) {
  const q = db<Row>('rejected_messages')
  if (!f.includeReplayed) q.whereNull('replayed_at')
  // position(), not LIKE: the text is the operator's, % and _ in it mean themselves.
  if (f.reason) q.whereRaw('position(lower(?) in lower(reason)) > 0', [f.reason])
  if (f.since) q.where('rejected_at', '>=', f.since)
  return q
}

/** The oldest `limit` dead letters the filter takes (by id), and how many it takes in all. */
export async function listRejected(db: Knex, f: RejectedFilter, limit: number): Promise<{ total: number; rows: RejectedRow[] }> {
  const [{ count }] = await matching(db, f).count<{ count: number }[]>({ count: '*' })
  const rows: Row[] = await matching(db, f).orderBy('id').limit(limit).select(COLUMNS)
  return { total: Number(count), rows: rows.map(toRow) }
}

export interface RejectedMessage extends RejectedRow {
  /** As recorded: the normalised message, serialised. */
  payload: string
}

/** The next `limit` pending dead letters after id `afterId` (a dry run's view: nothing is claimed). */
export async function peekRejected(db: Knex, f: RejectedFilter, afterId: number, limit: number): Promise<RejectedMessage[]> {
  const rows: Row[] = await matching(db, { ...f, includeReplayed: false }).where('id', '>', afterId).orderBy('id').limit(limit).select([...COLUMNS, 'payload'])
  return rows.map((r) => ({ ...toRow(r), payload: r.payload! }))
}

/**
 * Claims the next `limit` pending dead letters after id `afterId`: marks them
 * replayed at `now` and returns them. Rows another replay is claiming are
 * skipped (SKIP LOCKED), so two replays at once never queue a message twice.
 */
export async function claimRejected(db: Knex, f: RejectedFilter, afterId: number, limit: number, now: Date): Promise<RejectedMessage[]> {
  const ids = matching(db, { ...f, includeReplayed: false }).where('id', '>', afterId).orderBy('id').limit(limit).select('id').forUpdate().skipLocked()
  const rows = await db<Row>('rejected_messages')
    .whereIn('id', ids)
    .update({ replayed_at: now })
    .returning([...COLUMNS, 'payload'])
  return (rows as Row[]).map((r) => ({ ...toRow(r), payload: r.payload! })).sort((a, b) => a.id - b.id)
}

/** A claimed message that is still invalid: pending again, with the reason it is refused now. */
export async function keepRejected(db: Knex, id: number, reason: string): Promise<void> {
  await db('rejected_messages').where({ id }).update({ reason, replayed_at: null })
}

/** Claimed messages that could not be queued (Redis away): pending again, as they were. */
export async function releaseRejected(db: Knex, ids: readonly number[]): Promise<void> {
  if (ids.length > 0) await db('rejected_messages').whereIn('id', ids).update({ replayed_at: null })
}

/** Which of these message ids the log holds already. */
export async function storedMessageIds(db: Knex, messageIds: readonly string[]): Promise<Set<string>> {
  if (messageIds.length === 0) return new Set()
  const { rows } = await db.raw<{ rows: { message_id: string }[] }>('SELECT message_id FROM events WHERE message_id = ANY(?::text[])', [[...messageIds]])
  return new Set(rows.map((r) => r.message_id))
}
