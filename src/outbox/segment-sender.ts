import { Analytics } from '@segment/analytics-node'
import { FORWARDED_EVENTS, FORWARD_MARK } from './forwarded.ts'
import { messageIdOf, type Outcome, type OutboxRow } from './store.ts'

/**
 * Conversions to Segment as `Conversion Recorded` / `Conversion Revoked`
 * track calls, through `@segment/analytics-node` (docs/outbound.md). The
 * client's per-message callback says what the collector took. Retries are the
 * outbox's (the client gets none of its own), so a row is tried again after a
 * backoff and with the same `messageId`, whichever worker sends it.
 */

export interface SegmentTarget {
  writeKey: string
  host?: string
  /** The whole send's deadline. */
  timeoutMs: number
}

/** Properties of a forwarded conversion (the conversion's columns, CONTRACT.md). */
function properties(p: Record<string, unknown>): Record<string, unknown> {
  return {
    campaign_key: p.campaign_key,
    delivery_id: p.delivery_id,
    journey_id: p.journey_id,
    goal_type: p.goal_type,
    attributed_via: p.attributed_via,
    channel: p.channel,
    value: p.value,
    goal_version: p.goal_version,
    event_message_id: p.event_message_id,
    anchor_at: p.anchor_at,
    converted_at: p.converted_at,
  }
}

/** The track call for a row; `known`: the person is a userId (else an anonymousId). */
export function trackCall(row: OutboxRow, known: boolean) {
  const recorded = row.change === 'conversion_recorded'
  return {
    messageId: messageIdOf(row),
    event: FORWARDED_EVENTS[row.change as keyof typeof FORWARDED_EVENTS],
    ...(known ? { userId: row.person_id } : { anonymousId: row.person_id }),
    // Recorded: the conversion's processing time (R1). Revoked: when goalpost took it back.
    timestamp: recorded ? new Date(row.payload.converted_at as string) : row.created_at,
    properties: properties(row.payload),
    context: { [FORWARD_MARK]: { forwarded: true, change: row.change, outbox_id: row.id } },
  }
}

const STATUS = /^\[(\d{3})\]/

/** A refusal the collector will repeat for the same input: 4xx but timeouts and rate limits. */
function refusal(err: unknown): string | null {
  const message = err instanceof Error ? err.message : String(err)
  if (/exceeds maximum event size/i.test(message)) return message
  const status = Number(STATUS.exec(message)?.[1])
  return status >= 400 && status < 500 && status !== 408 && status !== 429 ? message : null
}

/**
 * Sends the rows in one client (batched as the library batches them), or each
 * alone (`alone`): a refused batch is retried message by message at once, so
 * only the message the collector refuses by itself is kept as refused.
 */
async function sendWith(target: SegmentTarget, rows: readonly OutboxRow[], known: ReadonlySet<string>, alone: boolean): Promise<Map<string, Outcome>> {
  const analytics = new Analytics({
    writeKey: target.writeKey,
    ...(target.host ? { host: target.host } : {}),
    maxEventsInBatch: alone ? 1 : 250,
    flushInterval: 60_000, // flushed below, never by the timer
    maxRetries: 0,
    httpRequestTimeout: target.timeoutMs,
    maxRateLimitDuration: Math.ceil(target.timeoutMs / 1000),
  })
  analytics.on('error', () => undefined) // outcomes come from the callbacks
  const outcomes = new Map<string, Outcome>()
  for (const row of rows)
    analytics.track(trackCall(row, known.has(row.person_id)), (err) => {
      if (!err) return void outcomes.set(row.id, { kind: 'sent' })
      const refused = refusal(err)
      const error = err instanceof Error ? err.message : String(err)
      outcomes.set(row.id, refused && alone ? { kind: 'refused', error: `Segment refused it: ${error}` } : refused ? { kind: 'retry', error: `Segment refused its batch: ${error}`, delayMs: 0, alone: true } : { kind: 'retry', error, delayMs: -1 })
    })
  await analytics.closeAndFlush({ timeout: target.timeoutMs })
  for (const row of rows) if (!outcomes.has(row.id)) outcomes.set(row.id, { kind: 'retry', error: `no answer within ${target.timeoutMs} ms`, delayMs: -1 })
  return outcomes
}

/** Outcomes by row id; `delayMs: -1`: the caller's backoff. */
export async function sendToSegment(target: SegmentTarget, rows: readonly OutboxRow[], known: ReadonlySet<string>): Promise<Map<string, Outcome>> {
  const outcomes = new Map<string, Outcome>()
  const batched = rows.filter((r) => !r.send_alone)
  if (batched.length > 0) for (const [id, o] of await sendWith(target, batched, known, batched.length === 1)) outcomes.set(id, o)
  for (const row of rows.filter((r) => r.send_alone)) for (const [id, o] of await sendWith(target, [row], known, true)) outcomes.set(id, o)
  return outcomes
}
