import type { OutboundChange, WebhookDef } from '../core/config-document/webhooks.ts'

/**
 * Where outbound changes go (docs/outbound.md): Segment, when the process has
 * GOALPOST_FORWARD_WRITE_KEY, gets conversions recorded and revoked; each
 * configured webhook gets the changes (and campaigns) it asks for. `null`
 * when nothing is configured: the write path then adds no statement.
 */
export interface OutboundRouting {
  segment: boolean
  webhooks: readonly WebhookDef[]
  /** Told after a transaction that wrote outbox rows committed (wakes the drain at once). */
  onCommitted?: () => void
}

export const SEGMENT_DESTINATION = 'segment'
export const WEBHOOK_PREFIX = 'webhook:'

export const webhookDestination = (name: string) => `${WEBHOOK_PREFIX}${name}`

export function outboundRouting(segment: boolean, webhooks: readonly WebhookDef[], onCommitted?: () => void): OutboundRouting | null {
  if (!segment && webhooks.length === 0) return null
  return { segment, webhooks, onCommitted }
}

const CONVERSION_CHANGES: ReadonlySet<OutboundChange> = new Set(['conversion_recorded', 'conversion_revoked'])

/** The destinations of one change of one campaign. */
export function destinationsOf(routing: OutboundRouting, change: OutboundChange, campaignKey: string): string[] {
  const out: string[] = []
  if (routing.segment && CONVERSION_CHANGES.has(change)) out.push(SEGMENT_DESTINATION)
  for (const w of routing.webhooks)
    if (w.events.includes(change) && (!w.campaigns || w.campaigns.includes(campaignKey))) out.push(webhookDestination(w.name))
  return out
}

/** Whether any destination wants journey changes (else the write path builds none). */
export const wantsJourneys = (routing: OutboundRouting) =>
  routing.webhooks.some((w) => w.events.includes('journey_entered') || w.events.includes('journey_exited'))
