/**
 * The fault suite's workload: campaigns, and Segment calls for many people in
 * two phases, deliveries first, goal events after every delivery was
 * acknowledged. Processing times (R1) are when goalpost accepted a call, so a
 * fault can reorder calls within a phase (a retried batch arrives later) but
 * never across phases; the workload is built so that which journeys convert,
 * and with what value, does not depend on the order within a phase. Every run
 * of it, with or without faults, must give the same conversions.
 */
import type { IdentifyParams, TrackParams } from '@segment/analytics-node'

type TrackCall = TrackParams & { messageId: string }
export type Call = { kind: 'track'; params: TrackCall } | { kind: 'identify'; params: IdentifyParams & { messageId: string } }

const CAMPAIGN_IDS = ['101', '102', '103'] as const

/** Three campaigns with one goal: two anchored on delivery, one on opens (R7); one exits on the goal (R18). */
export const FAULT_CONFIG = `
campaigns:
  - key: welcome
    external_ids: ["101"]
    exit: never
    goal: { event: Order Completed, within: 1d, after: delivered, value: total,
            where: { conditions: [ { property: total, op: gte, value: 10 } ] } }
  - key: winback
    external_ids: ["102"]
    exit: on_goal
    goal: { event: Order Completed, within: 1d, after: delivered, value: total,
            where: { conditions: [ { property: total, op: gte, value: 10 } ] } }
  - key: promo
    external_ids: ["103"]
    goal: { event: Order Completed, within: 1d, after: opened, value: total,
            where: { conditions: [ { property: total, op: gte, value: 10 } ] } }
`

interface Person {
  userId: string
  campaignId: (typeof CAMPAIGN_IDS)[number]
  bounced: boolean // R5: the email is revoked
  push: boolean // a second delivery, push, delivered
  opened: boolean // the email was opened (R7, promo's anchor)
  total: number // of the one Order Completed; under 10 does not match the goal
  anonymousOrder: boolean // ordered before signing in: merged by an identify of the same phase (R25)
  browsed: boolean
}

function person(i: number): Person {
  return {
    userId: `fp-${i}`,
    campaignId: CAMPAIGN_IDS[i % 3],
    bounced: i % 5 === 0,
    push: i % 4 === 1,
    opened: i % 4 === 2,
    total: Math.floor(i / 3) % 3 === 2 ? 5 : 10 + (i % 40),
    anonymousOrder: i % 10 === 7,
    browsed: i % 2 === 0,
  }
}

/** Phase 1: traits and deliveries; phase 2: goal events. Message ids are stable across runs. */
export function faultWorkload(people: number): Call[][] {
  const deliveries: Call[] = []
  const goals: Call[] = []
  for (let i = 0; i < people; i++) {
    const p = person(i)
    const track = (phase: Call[], id: string, params: { event: string; properties: Record<string, unknown>; anonymousId?: string }) =>
      phase.push({
        kind: 'track',
        params: (params.anonymousId ? { ...params, messageId: `${id}-${i}` } : { ...params, userId: p.userId, messageId: `${id}-${i}` }) as TrackCall,
      })
    deliveries.push({ kind: 'identify', params: { userId: p.userId, traits: { plan: i % 2 ? 'pro' : 'free', n: i }, messageId: `traits-${i}` } })
    track(deliveries, 'sent', { event: 'Email Sent', properties: { delivery_id: `e-${i}`, campaign_id: p.campaignId } })
    if (p.bounced) track(deliveries, 'bounced', { event: 'Email Bounced', properties: { delivery_id: `e-${i}`, campaign_id: p.campaignId } })
    if (p.opened) track(deliveries, 'opened', { event: 'Email Opened', properties: { delivery_id: `e-${i}`, campaign_id: p.campaignId } })
    if (p.push)
      track(deliveries, 'push', { event: 'Push Notification Received', properties: { delivery_id: `p-${i}`, campaign_id: p.campaignId } })

    if (p.browsed) track(goals, 'viewed', { event: 'Product Viewed', properties: { sku: `sku-${i % 17}` } })
    if (p.anonymousOrder) {
      track(goals, 'order', { anonymousId: `anon-${i}`, event: 'Order Completed', properties: { total: p.total } })
      goals.push({ kind: 'identify', params: { userId: p.userId, anonymousId: `anon-${i}`, traits: { signed_in: true }, messageId: `signin-${i}` } })
    } else {
      track(goals, 'order', { event: 'Order Completed', properties: { total: p.total } })
    }
  }
  return [deliveries, goals]
}

/** What must convert, worked out from the rules alone: `campaign|person|value`, sorted. */
export function expectedConversions(people: number): string[] {
  const keys = { '101': 'welcome', '102': 'winback', '103': 'promo' } as const
  const out: string[] = []
  for (let i = 0; i < people; i++) {
    const p = person(i)
    if (p.total < 10) continue // R9: the goal's filter
    const emailCounts = !p.bounced // R5
    const anchored = p.campaignId === '103' ? emailCounts && p.opened : emailCounts || p.push // R7
    if (anchored) out.push(`${keys[p.campaignId]}|${p.userId}|${p.total}`) // R16
  }
  return out.sort()
}
