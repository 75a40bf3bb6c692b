import { describe, expect, it } from 'vitest'
import type { Channel, Step } from '../../../src/core/lifecycle.ts'
import type { GoalAfter } from '../../../src/core/model.ts'
import { DAY, HOUR, Log, MIN, at, campaign, config, eventGoal, run } from './builders.ts'

const goal = (after: GoalAfter, within = 1 * DAY) => eventGoal('Order Completed', { after, within })
const decisionsOf = (log: Log, after: GoalAfter = 'delivered', extra = {}) =>
  run(log, config([campaign({ goal: goal(after), ...extra })])).decisions.map((d) => d.reason)

/** A journey entered at 0 by `Cart Abandoned`. */
function entered(): Log {
  const log = new Log()
  log.track('Cart Abandoned', {}, at(0))
  return log
}

describe('R10 window', () => {
  const within = 2 * HOUR
  const anchor = at(10 * MIN)

  it.each([
    { name: 'exactly at the anchor', t: anchor, converts: true },
    { name: '1 ms after the anchor', t: anchor + 1, converts: true },
    { name: 'exactly at anchor + within', t: anchor + within, converts: true },
    { name: '1 ms after anchor + within', t: anchor + within + 1, converts: false },
  ])('R10: window bounds are inclusive: a candidate $name converts: $converts', ({ t, converts }) => {
    const log = entered()
    log.delivery('d1', 'sent', anchor)
    log.track('Order Completed', {}, t)
    const result = run(log, config([campaign({ goal: goal('delivered', within) })]))
    expect(result.conversions.length).toBe(converts ? 1 : 0)
    expect(result.decisions.map((d) => d.reason)).toEqual([converts ? 'converted' : 'outside-window'])
    if (converts) expect(result.conversions[0]).toMatchObject({ anchorAt: anchor, convertedAt: t, attributedVia: 'delivered' })
  })

  it.each(['opened', 'clicked'] as const)('R10: in %s mode the bounds are inclusive too (exactly anchor and anchor + within)', (after) => {
    for (const [offset, converts] of [[0, true], [2 * HOUR, true], [2 * HOUR + 1, false]] as const) {
      const log = entered()
      log.delivery('d1', 'sent', at(1 * MIN))
      log.delivery('d1', after, at(10 * MIN))
      log.track('Order Completed', {}, at(10 * MIN) + offset)
      expect(run(log, config([campaign({ goal: goal(after, 2 * HOUR) })])).conversions.length).toBe(converts ? 1 : 0)
    }
  })

  it('R10: a candidate before the anchor (an open after the purchase) does not convert', () => {
    const log = entered()
    log.delivery('d1', 'sent', at(1 * MIN))
    log.track('Order Completed', {}, at(5 * MIN))
    log.delivery('d1', 'opened', at(6 * MIN))
    expect(decisionsOf(log, 'opened')).toEqual(['no-anchor'])
  })
})

describe('R11 attribution', () => {
  it('R11: the delivery with the latest anchor whose window holds the candidate wins', () => {
    const log = entered()
    log.delivery('d1', 'sent', at(1 * MIN))
    log.delivery('d2', 'sent', at(2 * MIN))
    log.delivery('d3', 'sent', at(3 * MIN))
    log.track('Order Completed', {}, at(10 * MIN))
    const result = run(log, config([campaign()]))
    expect(result.conversions).toMatchObject([{ deliveryId: 'd3', anchorAt: at(3 * MIN) }])
    expect(result.deliveries.map((d) => [d.deliveryId, d.convertedAt])).toEqual([['d1', null], ['d2', null], ['d3', at(10 * MIN)]])
  })

  it('R11: only deliveries whose window holds the candidate compete (an expired earlier window does not)', () => {
    const log = entered()
    log.delivery('d1', 'sent', at(1 * MIN))
    log.delivery('d2', 'sent', at(2 * HOUR))
    log.track('Order Completed', {}, at(2 * HOUR + 30 * MIN))
    const result = run(log, config([campaign({ goal: goal('delivered', 1 * HOUR) })]))
    expect(result.conversions).toMatchObject([{ deliveryId: 'd2' }])
  })

  it('R11: delivered mode: the most recently delivered message wins, whatever the order they were sent in', () => {
    const log = entered()
    log.delivery('d1', 'sent', at(1 * MIN))
    log.delivery('d2', 'sent', at(2 * MIN))
    log.delivery('d2', 'delivered', at(3 * MIN))
    log.delivery('d1', 'delivered', at(4 * MIN))
    log.track('Order Completed', {}, at(10 * MIN))
    expect(run(log, config([campaign()])).conversions).toMatchObject([{ deliveryId: 'd1', anchorAt: at(4 * MIN) }])
  })

  it('R11: opened mode, out-of-order opens: message 2 opened before message 1 credits message 1 (the most recently opened)', () => {
    const log = entered()
    log.delivery('d1', 'sent', at(1 * MIN))
    log.delivery('d2', 'sent', at(2 * MIN))
    log.delivery('d2', 'opened', at(3 * MIN))
    log.delivery('d1', 'opened', at(4 * MIN))
    log.track('Order Completed', {}, at(10 * MIN))
    const result = run(log, config([campaign({ goal: goal('opened') })]))
    expect(result.conversions).toMatchObject([{ deliveryId: 'd1', anchorAt: at(4 * MIN), attributedVia: 'opened' }])
  })

  it('R11: clicked mode credits the most recently clicked message', () => {
    const log = entered()
    log.delivery('d1', 'sent', at(1 * MIN))
    log.delivery('d2', 'sent', at(2 * MIN))
    log.delivery('d1', 'clicked', at(3 * MIN))
    log.delivery('d2', 'opened', at(4 * MIN))
    log.track('Order Completed', {}, at(10 * MIN))
    expect(run(log, config([campaign({ goal: goal('clicked') })])).conversions).toMatchObject([{ deliveryId: 'd1', attributedVia: 'clicked' }])
  })

  it.each([
    { name: 'd2 persisted last', order: ['d1', 'd2'], winner: 'd2' },
    { name: 'd1 persisted last', order: ['d2', 'd1'], winner: 'd1' },
  ])('R11: equal anchors go to the delivery whose anchor input was persisted last (higher seq): $name', ({ order, winner }) => {
    const log = entered()
    for (const id of order) log.delivery(id, 'sent', at(5 * MIN))
    log.track('Order Completed', {}, at(10 * MIN))
    expect(run(log, config([campaign()])).conversions).toMatchObject([{ deliveryId: winner }])
  })

  it('R11: equal open times: the open persisted last wins, not the message sent last', () => {
    const log = entered()
    log.delivery('d1', 'sent', at(1 * MIN))
    log.delivery('d2', 'sent', at(2 * MIN))
    log.delivery('d2', 'opened', at(5 * MIN))
    log.delivery('d1', 'opened', at(5 * MIN))
    log.track('Order Completed', {}, at(10 * MIN))
    expect(run(log, config([campaign({ goal: goal('opened') })])).conversions).toMatchObject([{ deliveryId: 'd1' }])
  })

  it('R11: the tie-break reads the persist order even when inputs are listed out of order', () => {
    const log = entered()
    log.delivery('d1', 'sent', at(5 * MIN))
    log.delivery('d2', 'sent', at(5 * MIN))
    log.track('Order Completed', {}, at(10 * MIN))
    const events = [log.events[0], log.events[3], log.events[2], log.events[1]]
    const result = run(Object.assign(new Log(), { events }), config([campaign()]), at(10 * MIN))
    expect(result.conversions).toMatchObject([{ deliveryId: 'd2' }])
  })
})

describe('R7 anchors', () => {
  it('R7: an open that arrives after the purchase does not move the anchor (opened mode uses the earlier open)', () => {
    const log = entered()
    log.delivery('d1', 'sent', at(1 * MIN))
    log.delivery('d2', 'sent', at(2 * MIN))
    log.delivery('d1', 'opened', at(3 * MIN))
    log.track('Order Completed', {}, at(10 * MIN))
    log.delivery('d2', 'opened', at(11 * MIN))
    expect(run(log, config([campaign({ goal: goal('opened') })])).conversions).toMatchObject([{ deliveryId: 'd1', anchorAt: at(3 * MIN) }])
  })

  it('R7: a delivery receipt that arrives after the purchase does not move the anchor (delivered mode falls back to sent_at)', () => {
    const log = entered()
    log.delivery('d1', 'sent', at(1 * MIN))
    log.track('Order Completed', {}, at(10 * MIN))
    log.delivery('d1', 'delivered', at(11 * MIN))
    expect(run(log, config([campaign()])).conversions).toMatchObject([{ deliveryId: 'd1', anchorAt: at(1 * MIN) }])
  })

  it('R7: delivered mode anchors at delivered_at when recorded', () => {
    const log = entered()
    log.delivery('d1', 'sent', at(1 * MIN))
    log.delivery('d1', 'delivered', at(3 * MIN))
    log.track('Order Completed', {}, at(3 * MIN + 1 * DAY))
    expect(run(log, config([campaign()])).conversions).toMatchObject([{ anchorAt: at(3 * MIN) }])
  })

  it('R7: a click stands in for a missing open (opened mode) and for missing sent/delivered (delivered mode)', () => {
    for (const after of ['opened', 'delivered'] as const) {
      const log = entered()
      log.delivery('d1', 'clicked', at(5 * MIN))
      log.track('Order Completed', {}, at(10 * MIN))
      expect(run(log, config([campaign({ goal: goal(after) })])).conversions).toMatchObject([{ deliveryId: 'd1', anchorAt: at(5 * MIN) }])
    }
  })

  it('R7: a step\'s time is the earliest recorded for it or a later step (click before the open event)', () => {
    const log = entered()
    log.delivery('d1', 'sent', at(1 * MIN))
    log.delivery('d1', 'clicked', at(2 * MIN))
    log.delivery('d1', 'opened', at(3 * MIN))
    log.track('Order Completed', {}, at(2 * MIN + 1 * HOUR))
    const c = campaign({ goal: goal('opened', 1 * HOUR) })
    expect(run(log, config([c])).conversions).toMatchObject([{ anchorAt: at(2 * MIN) }])
  })

  it('R7: clicked mode with no click cannot convert (an open is not enough)', () => {
    const log = entered()
    log.delivery('d1', 'sent', at(1 * MIN))
    log.delivery('d1', 'opened', at(2 * MIN))
    log.track('Order Completed', {}, at(10 * MIN))
    expect(decisionsOf(log, 'clicked')).toEqual(['no-anchor'])
  })

  it('R7: opened mode with only a send cannot convert', () => {
    const log = entered()
    log.delivery('d1', 'delivered', at(1 * MIN))
    log.track('Order Completed', {}, at(10 * MIN))
    expect(decisionsOf(log, 'opened')).toEqual(['no-anchor'])
  })
})

describe('R5 a message must leave', () => {
  it.each([
    { name: 'sent', steps: ['sent'], converts: true },
    { name: 'delivered only', steps: ['delivered'], converts: true },
    { name: 'opened only', steps: ['opened'], converts: true },
    { name: 'drafted only', steps: ['drafted'], converts: false },
    { name: 'attempted only', steps: ['attempted'], converts: false },
    { name: 'drafted and attempted', steps: ['drafted', 'attempted'], converts: false },
    { name: 'drafted, then sent', steps: ['drafted', 'sent'], converts: true },
    { name: 'attempted, then sent', steps: ['attempted', 'sent'], converts: true },
    { name: 'sent, then bounced', steps: ['sent', 'revoked'], converts: false },
    { name: 'bounced, then delivered', steps: ['revoked', 'delivered'], converts: false },
    { name: 'sent, then a soft bounce (recorded only)', steps: ['sent', 'recorded'], converts: true },
  ] as Array<{ name: string; steps: Step[]; converts: boolean }>)('R5: a delivery with $name counts: $converts', ({ steps, converts }) => {
    const log = entered()
    steps.forEach((step, i) => log.delivery('d1', step, at((i + 1) * MIN)))
    log.track('Order Completed', {}, at(10 * MIN))
    expect(run(log, config([campaign()])).conversions.length).toBe(converts ? 1 : 0)
  })

  it('R5: a bounce recorded after the purchase still revokes the delivery', () => {
    const log = entered()
    log.delivery('d1', 'sent', at(1 * MIN))
    log.track('Order Completed', {}, at(10 * MIN))
    log.delivery('d1', 'revoked', at(1 * HOUR))
    const result = run(log, config([campaign()]))
    expect(result.conversions).toEqual([])
    expect(result.decisions.map((d) => d.reason)).toEqual(['no-attributable-delivery'])
  })

  it('R5: a revoked delivery passes the credit to the next-latest delivery', () => {
    const log = entered()
    log.delivery('d1', 'sent', at(1 * MIN))
    log.delivery('d2', 'sent', at(2 * MIN))
    log.track('Order Completed', {}, at(10 * MIN))
    log.delivery('d2', 'revoked', at(1 * HOUR))
    expect(run(log, config([campaign()])).conversions).toMatchObject([{ deliveryId: 'd1' }])
  })

  it('R5: a revocation frees the journey for a later candidate (the revoked candidate never converted it, R12)', () => {
    const log = entered()
    log.delivery('d1', 'sent', at(1 * MIN))
    log.track('Order Completed', {}, at(10 * MIN))
    log.delivery('d1', 'revoked', at(20 * MIN))
    log.delivery('d2', 'sent', at(30 * MIN))
    log.track('Order Completed', {}, at(40 * MIN))
    const result = run(log, config([campaign()]))
    expect(result.conversions).toMatchObject([{ deliveryId: 'd2', convertedAt: at(40 * MIN), eventMessageId: 'm6' }])
  })
})

describe('R6 attributable channels', () => {
  it.each([
    { channel: 'email', webhook: false, converts: true },
    { channel: 'sms', webhook: false, converts: true },
    { channel: 'push', webhook: false, converts: true },
    { channel: 'in_app', webhook: false, converts: true },
    { channel: 'webhook', webhook: false, converts: false },
    { channel: 'webhook', webhook: true, converts: true },
    { channel: 'slack', webhook: false, converts: false },
    { channel: 'slack', webhook: true, converts: false },
  ] as Array<{ channel: Channel; webhook: boolean; converts: boolean }>)(
    'R6: a $channel delivery with webhook_conversions $webhook is attributable: $converts',
    ({ channel, webhook, converts }) => {
      const log = entered()
      log.delivery('d1', 'sent', at(1 * MIN), { channel })
      log.track('Order Completed', {}, at(10 * MIN))
      const result = run(log, config([campaign({ webhookConversions: webhook })]))
      expect(result.conversions.length).toBe(converts ? 1 : 0)
      if (converts) expect(result.conversions[0].channel).toBe(channel)
      else expect(result.decisions.map((d) => d.reason)).toEqual(['no-attributable-delivery'])
    },
  )

  it('R6: a later slack message does not take the credit from an earlier email', () => {
    const log = entered()
    log.delivery('e1', 'sent', at(1 * MIN))
    log.delivery('s1', 'sent', at(2 * MIN), { channel: 'slack' })
    log.track('Order Completed', {}, at(10 * MIN))
    expect(run(log, config([campaign()])).conversions).toMatchObject([{ deliveryId: 'e1', channel: 'email' }])
  })
})

describe('R12 once per journey', () => {
  it('R12: the first converting candidate wins; later candidates change nothing', () => {
    const log = entered()
    log.delivery('d1', 'sent', at(1 * MIN))
    log.track('Order Completed', { total: 10 }, at(10 * MIN))
    log.delivery('d2', 'sent', at(20 * MIN))
    log.track('Order Completed', { total: 99 }, at(30 * MIN))
    const result = run(log, config([campaign({ goal: eventGoal('Order Completed', { value: 'total' }) })]))
    expect(result.conversions).toMatchObject([{ deliveryId: 'd1', convertedAt: at(10 * MIN), value: 10, eventMessageId: 'm3' }])
    expect(result.journeys[0].convertedAt).toBe(at(10 * MIN))
    expect(result.decisions.map((d) => [d.messageId, d.reason])).toEqual([['m3', 'converted'], ['m5', 'already-converted']])
  })

  it('R12: equal processing times are ordered by seq: the candidate persisted first converts', () => {
    const log = entered()
    log.delivery('d1', 'sent', at(1 * MIN))
    log.track('Order Completed', { total: 1 }, at(10 * MIN))
    log.track('Order Completed', { total: 2 }, at(10 * MIN))
    const result = run(log, config([campaign({ goal: eventGoal('Order Completed', { value: 'total' }) })]))
    expect(result.conversions).toMatchObject([{ value: 1, eventMessageId: 'm3' }])
  })

  it('R12: a candidate outside every window does not use up the journey', () => {
    const log = entered()
    log.track('Order Completed', {}, at(1 * MIN))
    log.delivery('d1', 'sent', at(2 * MIN))
    log.track('Order Completed', {}, at(3 * MIN))
    const result = run(log, config([campaign({ exit: 'never' })]))
    expect(result.decisions.map((d) => d.reason)).toEqual(['no-attributable-delivery', 'converted'])
    expect(result.conversions).toMatchObject([{ eventMessageId: 'm4' }])
  })
})

describe('R3 late inputs', () => {
  it('R3: an input listed late (a webhook retry) is judged at its own processing time', () => {
    const inOrder = entered()
    inOrder.delivery('d1', 'sent', at(1 * MIN))
    inOrder.track('Order Completed', {}, at(10 * MIN))
    inOrder.delivery('d1', 'opened', at(20 * MIN))
    const late = new Log()
    // Same inputs, the send persisted last (a retry), with its own earlier processing time.
    late.track('Cart Abandoned', {}, at(0))
    late.track('Order Completed', {}, at(10 * MIN))
    late.delivery('d1', 'opened', at(20 * MIN))
    late.delivery('d1', 'sent', at(1 * MIN))
    const a = run(inOrder, config([campaign()]), at(1 * DAY))
    const b = run(late, config([campaign()]), at(1 * DAY))
    expect(b.conversions).toMatchObject([{ deliveryId: 'd1', anchorAt: at(1 * MIN), convertedAt: at(10 * MIN) }])
    expect(b.conversions.map(({ eventMessageId: _m, ...rest }) => rest)).toEqual(a.conversions.map(({ eventMessageId: _m, ...rest }) => rest))
  })
})
