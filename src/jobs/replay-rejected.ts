import type { Knex } from 'knex'
import { parseDuration } from '../core/duration.ts'
import type { Source } from '../db/events.ts'
import {
  claimRejected,
  keepRejected,
  peekRejected,
  releaseRejected,
  storedMessageIds,
  type RejectedFilter,
  type RejectedMessage,
  type RejectedRow,
} from '../db/rejected.ts'
import { isoTimestamp, normaliseMessage, parseTimestamp, type IngestMessage } from '../segment/normalise.ts'
import type { IngestProducer } from './queues.ts'

/**
 * Dead letters (`rejected_messages`) replayed through the normal path, once
 * their cause is fixed (a goalpost upgrade that normalises them, a database
 * change): each message is validated again as the HTTP routes validate a
 * call, then queued on the ingest queue, where the workers store and evaluate
 * it like any other. Its processing time stays the one it was accepted at
 * (R1): a replayed message is a late input, judged at its own time (R3).
 *
 * Idempotent by messageId: a message the log already holds is a duplicate
 * (marked replayed, not queued); one queued is marked replayed, so a second
 * replay leaves it alone; one still invalid stays rejected with the reason it
 * is refused now, and one Postgres refuses again is pending again with its
 * new reason (recordRejected).
 */

export interface ReplaySummary {
  dry_run: boolean
  /** Pending dead letters the filter took. */
  matched: number
  /** Queued again (with --dry-run: would be). */
  queued: number
  /** Already in the log: nothing to do. */
  already_stored: number
  /** Refused again by validation: still rejected, with their reason. */
  still_invalid: number
  /** The still-invalid ones (at most 100), with why. */
  invalid: { id: number; message_id: string | null; reason: string }[]
}

/** `--since`: an ISO 8601 date-time, or a duration (`24h`, `7d`) before `now`; null when it is neither. */
export function parseSince(text: string, now: number): Date | null {
  const ms = parseDuration(text)
  if (ms !== null) return new Date(now - ms)
  return parseTimestamp(text)
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

/**
 * The Segment call a recorded (normalised) message came from, as far as it
 * matters: normalising it again gives the same message back (client times
 * stored but not used, R1, included).
 */
export function segmentCall(m: Record<string, unknown>): Record<string, unknown> {
  const meta = isObject(m.meta) ? m.meta : {}
  const call: Record<string, unknown> = {
    type: m.type,
    messageId: m.messageId,
    userId: m.userId,
    anonymousId: m.anonymousId,
    context: m.context,
    timestamp: m.timestamp,
    originalTimestamp: meta.originalTimestamp,
    receivedAt: meta.clientReceivedAt,
  }
  switch (m.type) {
    case 'track':
      call.event = m.name ?? undefined
      call.properties = m.properties
      break
    case 'page':
    case 'screen':
      call.properties = m.properties // name and category are in them already
      break
    case 'identify':
      call.traits = m.properties
      break
    case 'group':
      call.traits = m.properties
      call.groupId = meta.groupId
      break
    case 'alias':
      call.previousId = meta.previousId
      break
  }
  return Object.fromEntries(Object.entries(call).filter(([, v]) => v !== undefined))
}

type Revalidated = { ok: true; message: IngestMessage; bytes: number } | { ok: false; reason: string }

/** A recorded message validated again as a call of the tracking API, at its own processing time. */
export function revalidate(payload: string): Revalidated {
  let recorded: unknown
  try {
    recorded = JSON.parse(payload)
  } catch (err) {
    return { ok: false, reason: `replay: the recorded payload is not JSON: ${(err as Error).message}` }
  }
  if (!isObject(recorded)) return { ok: false, reason: 'replay: the recorded payload is not a message' }
  const receivedAt = typeof recorded.receivedAt === 'string' ? isoTimestamp(recorded.receivedAt) : null
  if (receivedAt === null) return { ok: false, reason: 'replay: receivedAt (the processing time, R1) must be an ISO 8601 date-time in years 1-9999' }
  const result = normaliseMessage(segmentCall(recorded), { receivedAt })
  return result.ok ? { ok: true, message: result.message, bytes: result.bytes } : { ok: false, reason: `replay: ${result.error.message}` }
}

/** Dead letters in the shape the CLI's --json and `GET /admin/rejected` print. */
export const rejectedJson = (r: RejectedRow) => ({
  id: r.id,
  message_id: r.messageId,
  source: r.source,
  received_at: r.receivedAt,
  rejected_at: r.rejectedAt,
  reason: r.reason,
  replayed_at: r.replayedAt,
})

export interface ReplayOptions {
  dryRun?: boolean
  now?: Date
  /** Dead letters handled per round (claimed, validated, queued together). */
  batchSize?: number
}

/** Replays the pending dead letters the filter takes; `producer` may be null for a dry run. */
export async function replayRejected(db: Knex, producer: IngestProducer | null, filter: RejectedFilter, opts: ReplayOptions = {}): Promise<ReplaySummary> {
  const dryRun = opts.dryRun ?? false
  if (!dryRun && !producer) throw new Error('replayRejected: a producer is needed unless it is a dry run')
  const summary: ReplaySummary = { dry_run: dryRun, matched: 0, queued: 0, already_stored: 0, still_invalid: 0, invalid: [] }
  let afterId = 0
  for (;;) {
    const batch = dryRun
      ? await peekRejected(db, filter, afterId, opts.batchSize ?? 500)
      : await claimRejected(db, filter, afterId, opts.batchSize ?? 500, opts.now ?? new Date())
    if (batch.length === 0) return summary
    afterId = batch[batch.length - 1].id
    summary.matched += batch.length
    const valid: Item[] = []
    for (const row of batch) {
      const checked = revalidate(row.payload)
      if (checked.ok) {
        valid.push({ row, message: checked.message, bytes: checked.bytes })
        continue
      }
      summary.still_invalid++
      if (summary.invalid.length < 100) summary.invalid.push({ id: row.id, message_id: row.messageId, reason: checked.reason })
      if (!dryRun) await keepRejected(db, row.id, checked.reason)
    }
    const stored = await storedMessageIds(db, valid.map((v) => v.message.messageId))
    const toQueue = valid.filter((v) => !stored.has(v.message.messageId))
    summary.already_stored += valid.length - toQueue.length
    if (!dryRun) await queueAgain(db, producer!, toQueue)
    summary.queued += toQueue.length
  }
}

type Item = { row: RejectedMessage; message: IngestMessage; bytes: number }

/** Most bytes one queued batch of replayed messages holds: a tracking API request's limit. */
const MAX_BATCH_BYTES = 500 * 1024

/** Batches of one source each, none over MAX_BATCH_BYTES (unless one message alone is). */
function batches(items: readonly Item[]): { source: Source; items: Item[]; bytes: number }[] {
  const out: { source: Source; items: Item[]; bytes: number }[] = []
  const open = new Map<Source, (typeof out)[number]>()
  for (const item of items) {
    let batch = open.get(item.row.source)
    if (!batch || batch.bytes + item.bytes > MAX_BATCH_BYTES) {
      batch = { source: item.row.source, items: [], bytes: 0 }
      open.set(item.row.source, batch)
      out.push(batch)
    }
    batch.items.push(item)
    batch.bytes += item.bytes
  }
  return out
}

/** Queues the messages as the HTTP routes do; those not queued (Redis away) are pending again, and the error is thrown. */
async function queueAgain(db: Knex, producer: IngestProducer, items: readonly Item[]) {
  const groups = batches(items)
  const results = await Promise.allSettled(groups.map((b) => producer.enqueue({ source: b.source, messages: b.items.map((i) => i.message) }, b.bytes)))
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
  if (!failed) return
  await releaseRejected(db, groups.filter((_, i) => results[i].status === 'rejected').flatMap((b) => b.items.map((i) => i.row.id)))
  throw failed.reason
}
