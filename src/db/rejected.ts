import type { Knex } from 'knex'
import type { Source } from './events.ts'

export interface Rejection {
  messageId: string | null
  receivedAt: string | null
  reason: string
  payload: unknown
}

/** Keeps messages that can never be stored, with their reason (never retried, never dropped). */
export async function recordRejected(db: Knex, source: Source, rejections: readonly Rejection[]): Promise<void> {
  if (rejections.length === 0) return
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
