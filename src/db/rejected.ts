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

/** Keeps messages that can never be stored, with their reason (never retried, never dropped). */
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
  await db('rejected_messages').insert(
    rejections.map((r) => ({
      message_id: r.messageId,
      source,
      received_at: r.receivedAt,
      reason: r.reason,
      // text, not jsonb: whatever made the message unstorable as jsonb may be in it.
      payload: JSON.stringify(r.payload),
    })),
  ).onConflict('message_id').ignore() // a retried job records a rejection once
}
