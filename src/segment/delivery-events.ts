/**
 * Delivery lifecycle events (R4): which `track` event names record which
 * lifecycle step of which channel. The built-in table is CONTRACT.md's; the
 * configuration's `delivery_events` add to it.
 */
import type { Channel, DeliveryFact, Step } from '../core/lifecycle.ts'

export type { Channel, DeliveryFact, Step }

export interface DeliveryEventKind {
  channel: Channel
  step: Step
}

const BUILT_IN: Record<Step, Partial<Record<Channel, string[]>>> = {
  drafted: { email: ['Email Drafted'] },
  attempted: { email: ['Email Attempted'] },
  sent: {
    email: ['Email Sent'],
    push: ['Push Sent', 'Push Notification Sent'],
    sms: ['SMS Sent'],
    in_app: ['In-App Sent'],
    webhook: ['Webhook Sent'],
    slack: ['Slack Message Sent'],
  },
  delivered: {
    email: ['Email Delivered', 'Email Marked as Spam'],
    push: ['Push Delivered', 'Push Notification Received'],
    sms: ['SMS Delivered'],
  },
  opened: {
    email: ['Email Opened'],
    push: ['Push Opened', 'Push Notification Tapped'],
    in_app: ['In-App Opened'],
  },
  clicked: {
    email: ['Email Link Clicked'],
    push: ['Push Link Clicked'],
    sms: ['SMS Link Clicked', 'SMS Clicked', 'SMS Short Link Clicks'],
    in_app: ['In-App Clicked', 'In-App Link Clicked'],
  },
  revoked: {
    email: ['Email Bounced', 'Email Failed', 'Email Suppressed', 'Email Dropped'],
    push: ['Push Bounced', 'Push Notification Bounced', 'Push Failed'],
    sms: ['SMS Bounced', 'SMS Failed', 'SMS Delivery Failed'],
    webhook: ['Webhook Failed'],
  },
  recorded: { email: ['Email Soft Bounced', 'Email Unsubscribed', 'Unsubscribed'] },
}

/** The built-in table as a name → kind map. */
export const BUILT_IN_DELIVERY_EVENTS: ReadonlyMap<string, DeliveryEventKind> = new Map(
  Object.entries(BUILT_IN).flatMap(([step, byChannel]) =>
    Object.entries(byChannel).flatMap(([channel, names]) =>
      names.map((name) => [name, { channel: channel as Channel, step: step as Step }] as const),
    ),
  ),
)

/** The built-in table extended (and, for a repeated name, overridden) by configured events. */
export function deliveryEventTable(
  extra: ReadonlyArray<{ event: string } & DeliveryEventKind> = [],
): ReadonlyMap<string, DeliveryEventKind> {
  if (extra.length === 0) return BUILT_IN_DELIVERY_EVENTS
  const table = new Map(BUILT_IN_DELIVERY_EVENTS)
  for (const { event, channel, step } of extra) table.set(event, { channel, step })
  return table
}

/** Identifier properties, first present wins (CONTRACT.md). */
export const DELIVERY_ID_PROPERTIES = ['delivery_id', 'email_id', 'send_id', 'dispatch_id'] as const
export const CAMPAIGN_ID_PROPERTIES = ['campaign_id', 'canvas_id'] as const
export const ACTION_ID_PROPERTIES = ['action_id', 'template_id'] as const

function firstId(properties: Record<string, unknown>, names: readonly string[]): string | null {
  for (const name of names) {
    const value = properties[name]
    if (typeof value === 'string' && value !== '') return value
    if (typeof value === 'number' && Number.isFinite(value)) return String(value)
  }
  return null
}

/**
 * What a lifecycle event says about a delivery, or null when the event is not
 * a lifecycle event or names no delivery (R4: stored and counted, never
 * attributed).
 */
export function deliveryFact(
  table: ReadonlyMap<string, DeliveryEventKind>,
  eventName: string,
  properties: Record<string, unknown>,
): DeliveryFact | null {
  const kind = table.get(eventName)
  if (!kind) return null
  const deliveryId = firstId(properties, DELIVERY_ID_PROPERTIES)
  if (deliveryId === null) return null
  return {
    deliveryId,
    campaignRef: firstId(properties, CAMPAIGN_ID_PROPERTIES),
    journeyRef: firstId(properties, ['journey_id']),
    actionId: firstId(properties, ACTION_ID_PROPERTIES),
    channel: kind.channel,
    step: kind.step,
  }
}
