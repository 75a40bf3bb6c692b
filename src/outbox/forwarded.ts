/**
 * goalpost's own forwarded calls (docs/outbound.md, "No loops"): the events
 * it sends to Segment, and the mark they carry in `context`, by which
 * ingestion recognises them when the same Segment source feeds goalpost.
 */
export const FORWARDED_EVENTS = { conversion_recorded: 'Conversion Recorded', conversion_revoked: 'Conversion Revoked' } as const

/** `context.goalpost` on every forwarded call: `{ forwarded: true, change, outbox_id }`. */
export const FORWARD_MARK = 'goalpost'

const NAMES: ReadonlySet<string> = new Set(Object.values(FORWARDED_EVENTS))

/** A `Conversion Recorded` / `Conversion Revoked` track call goalpost itself sent. */
export function isForwardedCall(message: { type: string; name: string | null; context: Record<string, unknown> | null }): boolean {
  if (message.type !== 'track' || message.name === null || !NAMES.has(message.name)) return false
  const mark = message.context?.[FORWARD_MARK]
  return typeof mark === 'object' && mark !== null && (mark as { forwarded?: unknown }).forwarded === true
}
