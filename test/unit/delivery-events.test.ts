import { describe, expect, it } from 'vitest'
import { columnsSetBy, STEPS, type Channel, type Step, type StepColumn } from '../../src/core/lifecycle.ts'
import {
  BUILT_IN_DELIVERY_EVENTS,
  deliveryEventTable,
  deliveryFact,
  type DeliveryEventKind,
} from '../../src/segment/delivery-events.ts'

/**
 * CONTRACT.md "Built-in delivery events (R4)", copied by hand from the
 * contract's table, row by row (step) and column by column (channel).
 */
const CONTRACT_TABLE: Array<[name: string, channel: Channel, step: Step]> = [
  // drafted
  ['Email Drafted', 'email', 'drafted'],
  // attempted
  ['Email Attempted', 'email', 'attempted'],
  // sent
  ['Email Sent', 'email', 'sent'],
  ['Push Sent', 'push', 'sent'],
  ['Push Notification Sent', 'push', 'sent'],
  ['SMS Sent', 'sms', 'sent'],
  ['In-App Sent', 'in_app', 'sent'],
  ['Webhook Sent', 'webhook', 'sent'],
  ['Slack Message Sent', 'slack', 'sent'],
  // delivered
  ['Email Delivered', 'email', 'delivered'],
  ['Email Marked as Spam', 'email', 'delivered'],
  ['Push Delivered', 'push', 'delivered'],
  ['Push Notification Received', 'push', 'delivered'],
  ['SMS Delivered', 'sms', 'delivered'],
  // opened
  ['Email Opened', 'email', 'opened'],
  ['Push Opened', 'push', 'opened'],
  ['Push Notification Tapped', 'push', 'opened'],
  ['In-App Opened', 'in_app', 'opened'],
  // clicked
  ['Email Link Clicked', 'email', 'clicked'],
  ['Push Link Clicked', 'push', 'clicked'],
  ['SMS Link Clicked', 'sms', 'clicked'],
  ['SMS Clicked', 'sms', 'clicked'],
  ['SMS Short Link Clicks', 'sms', 'clicked'],
  ['In-App Clicked', 'in_app', 'clicked'],
  ['In-App Link Clicked', 'in_app', 'clicked'],
  // revoked (R5)
  ['Email Bounced', 'email', 'revoked'],
  ['Email Failed', 'email', 'revoked'],
  ['Email Suppressed', 'email', 'revoked'],
  ['Email Dropped', 'email', 'revoked'],
  ['Push Bounced', 'push', 'revoked'],
  ['Push Notification Bounced', 'push', 'revoked'],
  ['Push Failed', 'push', 'revoked'],
  ['SMS Bounced', 'sms', 'revoked'],
  ['SMS Failed', 'sms', 'revoked'],
  ['SMS Delivery Failed', 'sms', 'revoked'],
  ['Webhook Failed', 'webhook', 'revoked'],
  // recorded only
  ['Email Soft Bounced', 'email', 'recorded'],
  ['Email Unsubscribed', 'email', 'recorded'],
  ['Unsubscribed', 'email', 'recorded'],
]

describe('built-in delivery events (R4, CONTRACT table)', () => {
  it('R4: the contract table has no name twice (sanity of the expected table)', () => {
    expect(new Set(CONTRACT_TABLE.map(([name]) => name)).size).toBe(CONTRACT_TABLE.length)
  })

  it.each(CONTRACT_TABLE)('R4: "%s" records channel %s, step %s', (name, channel, step) => {
    expect(BUILT_IN_DELIVERY_EVENTS.get(name)).toEqual({ channel, step })
  })

  it('R4: the built-in table holds nothing the contract table does not list', () => {
    const contractNames = new Set(CONTRACT_TABLE.map(([name]) => name))
    const extra = [...BUILT_IN_DELIVERY_EVENTS.keys()].filter((name) => !contractNames.has(name))
    expect(extra).toEqual([])
    expect(BUILT_IN_DELIVERY_EVENTS.size).toBe(CONTRACT_TABLE.length)
  })

  it('R4: names are matched exactly (case and spacing matter), and other events are not lifecycle events', () => {
    for (const name of ['email sent', 'Email  Sent', 'Email Sent ', 'Order Completed', 'Page Viewed', 'constructor', 'toString']) {
      expect(BUILT_IN_DELIVERY_EVENTS.has(name), name).toBe(false)
      expect(deliveryFact(BUILT_IN_DELIVERY_EVENTS, name, { delivery_id: 'd1' }), name).toBeNull()
    }
  })

  it('R4: deliveryFact reports channel and step from the table, for every contract name', () => {
    for (const [name, channel, step] of CONTRACT_TABLE) {
      expect(deliveryFact(BUILT_IN_DELIVERY_EVENTS, name, { delivery_id: 'd1', campaign_id: 'c1' })).toEqual({
        deliveryId: 'd1',
        campaignRef: 'c1',
        journeyRef: null,
        actionId: null,
        channel,
        step,
      })
    }
  })
})

describe('identifier properties (R4, CONTRACT)', () => {
  const fact = (properties: Record<string, unknown>) => deliveryFact(BUILT_IN_DELIVERY_EVENTS, 'Email Delivered', properties)

  it('R4: the delivery is delivery_id, else email_id, else send_id, else dispatch_id', () => {
    const all = { delivery_id: 'd', email_id: 'e', send_id: 's', dispatch_id: 'x' }
    expect(fact(all)?.deliveryId).toBe('d')
    expect(fact({ ...all, delivery_id: undefined })?.deliveryId).toBe('e')
    expect(fact({ send_id: 's', dispatch_id: 'x' })?.deliveryId).toBe('s')
    expect(fact({ dispatch_id: 'x' })?.deliveryId).toBe('x')
  })

  it('R4: an empty, null or non-scalar id property is skipped for the next one', () => {
    expect(fact({ delivery_id: '', email_id: 'e' })?.deliveryId).toBe('e')
    expect(fact({ delivery_id: null, send_id: 's' })?.deliveryId).toBe('s')
    expect(fact({ delivery_id: { id: 1 }, dispatch_id: 'x' })?.deliveryId).toBe('x')
    expect(fact({ delivery_id: ['d'], email_id: 'e' })?.deliveryId).toBe('e')
    expect(fact({ delivery_id: true, email_id: 'e' })?.deliveryId).toBe('e')
  })

  it('R4: numeric ids are used as strings', () => {
    expect(fact({ delivery_id: 123, campaign_id: 42, action_id: 7, journey_id: 9 })).toMatchObject({
      deliveryId: '123',
      campaignRef: '42',
      actionId: '7',
      journeyRef: '9',
    })
    expect(fact({ delivery_id: 0 })?.deliveryId).toBe('0')
  })

  it('R4: a lifecycle event that names no delivery gives no fact (stored, never attributed)', () => {
    expect(fact({})).toBeNull()
    expect(fact({ campaign_id: 'c1', journey_id: 'j1', action_id: 'a1' })).toBeNull()
    expect(fact({ delivery_id: '', email_id: null })).toBeNull()
    expect(fact({ id: 'd1', message_id: 'd1' })).toBeNull()
  })

  it('R4: the campaign is campaign_id, else canvas_id; absent -> null', () => {
    expect(fact({ delivery_id: 'd', campaign_id: 'c', canvas_id: 'v' })?.campaignRef).toBe('c')
    expect(fact({ delivery_id: 'd', canvas_id: 'v' })?.campaignRef).toBe('v')
    expect(fact({ delivery_id: 'd', campaign_id: '', canvas_id: 'v' })?.campaignRef).toBe('v')
    expect(fact({ delivery_id: 'd' })?.campaignRef).toBeNull()
  })

  it('R26: the message is action_id, else template_id; absent -> null', () => {
    expect(fact({ delivery_id: 'd', action_id: 'a', template_id: 't' })?.actionId).toBe('a')
    expect(fact({ delivery_id: 'd', template_id: 't' })?.actionId).toBe('t')
    expect(fact({ delivery_id: 'd' })?.actionId).toBeNull()
  })

  it('R4: journey_id is optional', () => {
    expect(fact({ delivery_id: 'd', journey_id: 'j' })?.journeyRef).toBe('j')
    expect(fact({ delivery_id: 'd' })?.journeyRef).toBeNull()
  })
})

describe('deliveryEventTable with configured delivery_events (CONTRACT configuration)', () => {
  it('R4: without extras it is the built-in table', () => {
    expect([...deliveryEventTable().entries()]).toEqual([...BUILT_IN_DELIVERY_EVENTS.entries()])
    expect([...deliveryEventTable([]).entries()]).toEqual([...BUILT_IN_DELIVERY_EVENTS.entries()])
  })

  it('R4: configured events are added to the built-in ones', () => {
    const table = deliveryEventTable([
      { event: 'Braze Email Sent', channel: 'email', step: 'sent' },
      { event: 'Braze Push Clicked', channel: 'push', step: 'clicked' },
    ])
    expect(table.get('Braze Email Sent')).toEqual({ channel: 'email', step: 'sent' })
    expect(table.get('Braze Push Clicked')).toEqual({ channel: 'push', step: 'clicked' })
    for (const [name, channel, step] of CONTRACT_TABLE) expect(table.get(name)).toEqual({ channel, step })
    expect(table.size).toBe(CONTRACT_TABLE.length + 2)
    expect(deliveryFact(table, 'Braze Email Sent', { send_id: 's1' })).toMatchObject({ deliveryId: 's1', channel: 'email', step: 'sent' })
  })

  it('R4: a configured event with a built-in name overrides it, without changing the built-in table', () => {
    const table = deliveryEventTable([{ event: 'Email Marked as Spam', channel: 'email', step: 'recorded' }])
    expect(table.get('Email Marked as Spam')).toEqual<DeliveryEventKind>({ channel: 'email', step: 'recorded' })
    expect(BUILT_IN_DELIVERY_EVENTS.get('Email Marked as Spam')).toEqual({ channel: 'email', step: 'delivered' })
    expect(deliveryEventTable().get('Email Marked as Spam')).toEqual({ channel: 'email', step: 'delivered' })
  })
})

describe('columnsSetBy: a later step stands in for earlier ones (R5, R7)', () => {
  const expected: Record<Step, StepColumn[]> = {
    drafted: ['drafted_at'],
    attempted: ['attempted_at'],
    sent: ['sent_at'],
    delivered: ['sent_at', 'delivered_at'],
    opened: ['sent_at', 'delivered_at', 'opened_at'],
    clicked: ['sent_at', 'delivered_at', 'opened_at', 'clicked_at'],
    revoked: ['failed_at'],
    recorded: [],
  }

  it.each(STEPS)('R5/R7: step %s sets exactly the expected columns', (step) => {
    expect([...columnsSetBy(step)].sort()).toEqual([...expected[step]].sort())
  })

  it('R7: a click alone counts as sent, delivered and opened (CONTRACT: "a delivery with only a click")', () => {
    expect(columnsSetBy('clicked')).toEqual(expect.arrayContaining(['sent_at', 'delivered_at', 'opened_at', 'clicked_at']))
  })

  it('R5: drafted and attempted precede sending: they never imply sent, and do not revoke', () => {
    for (const step of ['drafted', 'attempted'] as const) {
      expect(columnsSetBy(step)).not.toContain('sent_at')
      expect(columnsSetBy(step)).not.toContain('failed_at')
    }
  })

  it('R5: only revocations set failed_at, and they imply no sending step', () => {
    for (const step of STEPS) expect(columnsSetBy(step).includes('failed_at'), step).toBe(step === 'revoked')
    expect(columnsSetBy('revoked')).toEqual(['failed_at'])
  })

  it('R4: recorded-only events change no column', () => {
    expect(columnsSetBy('recorded')).toEqual([])
  })

  it('R5/R7: every step from sent on implies all the sending steps before it, and no later one', () => {
    const order: StepColumn[] = ['sent_at', 'delivered_at', 'opened_at', 'clicked_at']
    const sending: Step[] = ['sent', 'delivered', 'opened', 'clicked']
    sending.forEach((step, i) => {
      expect([...columnsSetBy(step)].sort()).toEqual(order.slice(0, i + 1).sort())
    })
  })
})
