import type { Channel } from './lifecycle.ts'
import type { CampaignDef, Goal, GoalAfter } from './model.ts'
import { asNumber, valueAt } from './operators.ts'

/** Each campaign's goal versions with effective_from parsed, once per configuration (asked at every instant of every evaluation). */
const parsedGoals = new WeakMap<CampaignDef, Array<{ from: number; version: number; goal: Goal | null }>>()

/** R13: the goal version in force at `t`: the highest version whose effective_from is not after `t`. */
export function goalVersionAt(campaign: CampaignDef, t: number): { version: number; goal: Goal | null } | null {
  let goals = parsedGoals.get(campaign)
  if (!goals) parsedGoals.set(campaign, (goals = campaign.goals.map((v) => ({ from: Date.parse(v.effectiveFrom), version: v.version, goal: v.goal }))))
  let best: { version: number; goal: Goal | null } | null = null
  for (const v of goals) if (v.from <= t && (best === null || v.version > best.version)) best = { version: v.version, goal: v.goal }
  return best
}

/** A point of a delivery's lifecycle: when, and the persist order of the input that recorded it (R2). */
export interface Mark {
  at: number
  seq: number
}

/** A delivery as attribution sees it at the candidate's processing time. */
export interface DeliveryView {
  deliveryId: string
  channel: Channel
  /** Effective step marks (a later step stands in for earlier ones), as recorded so far (R7). */
  sent?: Mark
  delivered?: Mark
  opened?: Mark
  clicked?: Mark
  /** R5: a bounce, failure, suppression or drop recorded at any time, before or after. */
  revoked: boolean
  /** R20: recorded after the journey exited. */
  afterExit: boolean
}

/** R6: which channels can be credited with a conversion. */
export function isAttributableChannel(channel: Channel, webhookConversions: boolean): boolean {
  switch (channel) {
    case 'email':
    case 'sms':
    case 'push':
    case 'in_app':
      return true
    case 'webhook':
      return webhookConversions
    case 'slack':
      return false
  }
}

/** R7: the anchor the goal's `after` setting picks. */
export function anchorOf(d: DeliveryView, after: GoalAfter): Mark | undefined {
  switch (after) {
    case 'delivered':
      return d.delivered ?? d.sent
    case 'opened':
      return d.opened
    case 'clicked':
      return d.clicked
  }
}

export type AttributionDecision =
  | { converts: true; deliveryId: string; anchor: Mark; channel: Channel }
  | { converts: false; reason: 'no-attributable-delivery' | 'no-anchor' | 'outside-window' }

/**
 * R5–R7, R10, R11: which of a journey's deliveries a candidate at `t` converts.
 * Among deliveries whose window holds `t` (anchor <= t <= anchor + within) the
 * latest anchor wins; equal anchors go to the anchor input persisted last.
 */
export function attribute(
  deliveries: readonly DeliveryView[],
  goal: { withinMs: number; after: GoalAfter },
  t: number,
  webhookConversions: boolean,
): AttributionDecision {
  let best: { d: DeliveryView; anchor: Mark } | null = null
  let sawAttributable = false
  let sawAnchor = false
  for (const d of deliveries) {
    if (d.afterExit || d.revoked || !d.sent || !isAttributableChannel(d.channel, webhookConversions)) continue
    sawAttributable = true
    const anchor = anchorOf(d, goal.after)
    if (!anchor || anchor.at > t) continue
    sawAnchor = true
    if (t > anchor.at + goal.withinMs) continue
    if (!best || anchor.at > best.anchor.at || (anchor.at === best.anchor.at && anchor.seq > best.anchor.seq))
      best = { d, anchor }
  }
  if (best) return { converts: true, deliveryId: best.d.deliveryId, anchor: best.anchor, channel: best.d.channel }
  return { converts: false, reason: !sawAttributable ? 'no-attributable-delivery' : !sawAnchor ? 'no-anchor' : 'outside-window' }
}

/** R16: the conversion value, a number or null. */
export function conversionValue(goal: Goal, properties: Record<string, unknown>): number | null {
  if (goal.kind !== 'event' || !goal.value) return null
  return asNumber(valueAt(properties, goal.value))
}
