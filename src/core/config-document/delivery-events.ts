/**
 * `delivery_events`: lifecycle events the configuration adds to the built-in
 * table (R4, R5), each with its channel and the step its status records.
 */
import { CHANNELS, type Step } from '../lifecycle.ts'
import type { DeliveryEventDef } from '../model.ts'
import { isMapping, oneOf, rawList, strict, text, type Problem } from './shared.ts'

/** `status` names accepted in `delivery_events`, and the lifecycle step each records (R4, R5). */
export const DELIVERY_STATUSES: Readonly<Record<string, Step>> = {
  drafted: 'drafted',
  attempted: 'attempted',
  sent: 'sent',
  delivered: 'delivered',
  opened: 'opened',
  clicked: 'clicked',
  // R5's revocations, by any of their names.
  revoked: 'revoked',
  bounced: 'revoked',
  failed: 'revoked',
  suppressed: 'revoked',
  dropped: 'revoked',
  // Stored and counted, no step (like `Email Unsubscribed`).
  recorded: 'recorded',
}

const STATUS_NAMES = Object.keys(DELIVERY_STATUSES) as [string, ...string[]]

export const deliveryEventSchema = strict({
  event: text,
  channel: oneOf(CHANNELS, 'channel'),
  status: oneOf(STATUS_NAMES, 'status'),
}).transform((d): DeliveryEventDef => ({ event: d.event, channel: d.channel, step: DELIVERY_STATUSES[d.status] }))

/** Each event name once: a second entry for it is a problem at its `event`. */
export function duplicateEvents(doc: Record<string, unknown>): Problem[] {
  const events = new Map<string, number>()
  const problems: Problem[] = []
  rawList(doc, 'delivery_events').forEach((d, i) => {
    if (!isMapping(d) || typeof d.event !== 'string') return
    const seen = events.get(d.event.trim())
    if (seen === undefined) events.set(d.event.trim(), i)
    else problems.push({ path: ['delivery_events', i, 'event'], message: `duplicate event ${JSON.stringify(d.event)} (also delivery_events[${seen}])` })
  })
  return problems
}
