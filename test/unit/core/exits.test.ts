import { describe, expect, it } from 'vitest'
import type { ExitSetting } from '../../../src/core/model.ts'
import {
  DAY,
  HOUR,
  Log,
  MIN,
  at,
  attr,
  campaign,
  config,
  counted,
  eventGoal,
  iso,
  personAll,
  run,
  segment,
  segmentGoal,
} from './builders.ts'

const pro = segment('pro', 'all', attr('plan', 'eq', 'pro'))
const US = personAll(attr('country', 'eq', 'US'))

/** A US person who abandoned a cart at 1 min and got message d1 at 2 min. */
function started(): Log {
  const log = new Log()
  log.identify({ country: 'US' }, at(0))
  log.track('Cart Abandoned', {}, at(1 * MIN))
  log.delivery('d1', 'sent', at(2 * MIN))
  return log
}

const exitOf = (log: Log, exit: ExitSetting, now?: number) => {
  const [j] = run(log, config([campaign({ exit, filters: US })], [pro]), now).journeys
  return { exitedAt: j.exitedAt, exitReason: j.exitReason }
}

describe('R18 exit settings', () => {
  it.each([
    { exit: 'on_unmatch' as const, reason: 'unmatch' as const },
    { exit: 'on_goal' as const, reason: null },
    { exit: 'on_goal_or_unmatch' as const, reason: 'unmatch' as const },
    { exit: 'never' as const, reason: null },
  ])('R18: $exit: the person stops matching the audience filters -> exit reason $reason', ({ exit, reason }) => {
    const log = started()
    log.identify({ country: 'FR' }, at(10 * MIN))
    expect(exitOf(log, exit)).toEqual({ exitedAt: reason ? at(10 * MIN) : null, exitReason: reason })
  })

  it.each([
    { exit: 'on_unmatch' as const, reason: null },
    { exit: 'on_goal' as const, reason: 'goal' as const },
    { exit: 'on_goal_or_unmatch' as const, reason: 'goal' as const },
    { exit: 'never' as const, reason: null },
  ])('R18: $exit: the person meets the goal -> exit reason $reason (and the journey converts either way)', ({ exit, reason }) => {
    const log = started()
    log.track('Order Completed', {}, at(10 * MIN))
    expect(exitOf(log, exit)).toEqual({ exitedAt: reason ? at(10 * MIN) : null, exitReason: reason })
    expect(run(log, config([campaign({ exit, filters: US })])).conversions).toMatchObject([{ deliveryId: 'd1', convertedAt: at(10 * MIN) }])
  })

  it('R18: on_unmatch with a segment trigger: leaving the trigger segment exits', () => {
    const c = campaign({ trigger: { kind: 'segment', segment: 'pro' } })
    const log = new Log()
    log.identify({ plan: 'pro' }, at(0))
    log.identify({ plan: 'free' }, at(1 * HOUR))
    expect(run(log, config([c], [pro])).journeys).toMatchObject([{ exitedAt: at(1 * HOUR), exitReason: 'unmatch' }])
  })

  it('R18: on_goal: a person who buys before any message exits without converting; a later message is after_exit', () => {
    const log = new Log()
    log.track('Cart Abandoned', {}, at(0))
    log.track('Order Completed', {}, at(1 * MIN))
    log.delivery('d1', 'sent', at(2 * MIN))
    log.track('Order Completed', {}, at(3 * MIN))
    const result = run(log, config([campaign({ exit: 'on_goal' })]))
    expect(result.journeys).toMatchObject([{ exitedAt: at(1 * MIN), exitReason: 'goal', convertedAt: null }])
    expect(result.deliveries).toMatchObject([{ deliveryId: 'd1', afterExit: true }])
    expect(result.conversions).toEqual([])
    expect(result.decisions.map((d) => d.reason)).toEqual(['no-attributable-delivery', 'no-attributable-delivery'])
  })

  it('R18: on_goal: a goal event that fails the goal filters does not exit', () => {
    const log = started()
    log.track('Order Completed', { total: 0 }, at(10 * MIN))
    const c = campaign({ exit: 'on_goal', goal: eventGoal('Order Completed', { where: { match: 'all', conditions: [{ property: 'total', op: 'gt', value: { literal: 0 } }] } }) })
    expect(run(log, config([c])).journeys).toMatchObject([{ exitedAt: null }])
  })

  it('R18: on_goal: a candidate outside every window still exits', () => {
    const log = started()
    log.track('Order Completed', {}, at(5 * DAY))
    const result = run(log, config([campaign({ exit: 'on_goal' })]))
    expect(result.journeys).toMatchObject([{ exitedAt: at(5 * DAY), exitReason: 'goal' }])
    expect(result.conversions).toEqual([])
  })

  it('R18: on_goal with a join goal exits when the person joins the goal segment', () => {
    const log = started()
    log.identify({ plan: 'pro' }, at(10 * MIN))
    const result = run(log, config([campaign({ exit: 'on_goal', goal: segmentGoal('pro', 'join') })], [pro]))
    expect(result.journeys).toMatchObject([{ exitedAt: at(10 * MIN), exitReason: 'goal' }])
    expect(result.conversions).toMatchObject([{ deliveryId: 'd1', eventMessageId: 'm4' }])
  })

  it('R18: on_goal ignores a goal that was not in force when the journey entered (R14)', () => {
    const log = started()
    log.track('Order Completed', {}, at(10 * MIN))
    const c = campaign({ exit: 'on_goal', goals: [{ version: 1, effectiveFrom: iso(at(5 * MIN)), goal: eventGoal('Order Completed') }] })
    expect(run(log, config([c])).journeys).toMatchObject([{ exitedAt: null, goalVersion: null }])
  })

  it('R18: on_goal_or_unmatch: whichever comes first, recorded at the processing time of the input that made it true', () => {
    const log = started()
    log.identify({ country: 'FR' }, at(10 * MIN))
    log.track('Order Completed', {}, at(20 * MIN))
    expect(exitOf(log, 'on_goal_or_unmatch')).toEqual({ exitedAt: at(10 * MIN), exitReason: 'unmatch' })
  })

  it('R18: on_goal_or_unmatch: one input that both meets the goal and unmatches records exit reason goal', () => {
    const c = campaign({ exit: 'on_goal_or_unmatch', filters: US, goal: segmentGoal('pro', 'join') })
    const log = started()
    log.identify({ country: 'FR', plan: 'pro' }, at(10 * MIN))
    const result = run(log, config([c], [pro]))
    expect(result.journeys).toMatchObject([{ exitedAt: at(10 * MIN), exitReason: 'goal' }])
    expect(result.conversions).toMatchObject([{ deliveryId: 'd1' }])
  })

  it('R18: on_unmatch caused by time alone (a rolling event count in the audience filters) exits at the instant it flipped', () => {
    const c = campaign({ filters: personAll(counted('Product Viewed', 'gte', 1, 1 * DAY)) })
    const log = new Log()
    log.track('Product Viewed', {}, at(0))
    log.track('Cart Abandoned', {}, at(1 * HOUR))
    const result = run(log, config([c]), at(3 * DAY))
    expect(result.journeys).toMatchObject([{ exitedAt: at(1 * DAY), exitReason: 'unmatch' }])
  })

  it('R18: never: the journey goes on through goal and unmatch alike', () => {
    const log = started()
    log.identify({ country: 'FR' }, at(10 * MIN))
    log.track('Order Completed', {}, at(20 * MIN))
    log.delivery('d2', 'sent', at(30 * MIN))
    const result = run(log, config([campaign({ exit: 'never', filters: US })]))
    expect(result.journeys).toMatchObject([{ exitedAt: null, exitReason: null }])
    expect(result.deliveries).toMatchObject([{ afterExit: false }, { afterExit: false }])
  })
})

describe('R19 exit at entry', () => {
  it('R19: on_goal with a join goal and a person already in the goal segment exits at entry, before any message', () => {
    const log = new Log()
    log.identify({ plan: 'pro' }, at(0))
    log.track('Cart Abandoned', {}, at(1 * MIN))
    log.delivery('d1', 'sent', at(2 * MIN))
    const result = run(log, config([campaign({ exit: 'on_goal', goal: segmentGoal('pro', 'join') })], [pro]))
    expect(result.journeys).toMatchObject([{ enteredAt: at(1 * MIN), exitedAt: at(1 * MIN), exitReason: 'goal' }])
    expect(result.deliveries).toMatchObject([{ afterExit: true }])
  })

  it('R19: on_goal with a leave goal and a person already outside the goal segment exits at entry', () => {
    const log = new Log()
    log.track('Cart Abandoned', {}, at(1 * MIN))
    const result = run(log, config([campaign({ exit: 'on_goal', goal: segmentGoal('pro', 'leave') })], [pro]))
    expect(result.journeys).toMatchObject([{ exitedAt: at(1 * MIN), exitReason: 'goal' }])
  })

  it('R19: a delivery-caused entry of a person outside the filters exits at once (on_unmatch) and that delivery is after_exit', () => {
    const log = new Log()
    log.identify({ country: 'FR' }, at(0))
    log.delivery('d1', 'sent', at(1 * MIN))
    log.track('Order Completed', {}, at(2 * MIN))
    const result = run(log, config([campaign({ filters: US })]))
    expect(result.journeys).toMatchObject([{ entryCause: 'delivery', enteredAt: at(1 * MIN), exitedAt: at(1 * MIN), exitReason: 'unmatch' }])
    expect(result.deliveries).toMatchObject([{ deliveryId: 'd1', afterExit: true }])
    expect(result.conversions).toEqual([])
  })

  it('R19: a delivery-caused entry into a segment-triggered campaign of a person outside the trigger segment exits at once (on_unmatch: not matching the trigger segment)', () => {
    const log = new Log()
    log.delivery('d1', 'sent', at(1 * MIN))
    const result = run(log, config([campaign({ trigger: { kind: 'segment', segment: 'pro' } })], [pro]))
    expect(result.journeys).toMatchObject([{ entryCause: 'delivery', exitedAt: at(1 * MIN), exitReason: 'unmatch' }])
    expect(result.deliveries).toMatchObject([{ afterExit: true }])
  })

  it('R19: a delivery-caused entry of a person inside the filters stays and converts', () => {
    const log = new Log()
    log.identify({ country: 'US' }, at(0))
    log.delivery('d1', 'sent', at(1 * MIN))
    log.track('Order Completed', {}, at(2 * MIN))
    const result = run(log, config([campaign({ filters: US })]))
    expect(result.journeys).toMatchObject([{ exitedAt: null }])
    expect(result.conversions).toMatchObject([{ deliveryId: 'd1' }])
  })

  it('R19: with exit never, a person already in the join-goal segment enters and stays, but never converts (R15)', () => {
    const log = new Log()
    log.identify({ plan: 'pro' }, at(0))
    log.track('Cart Abandoned', {}, at(1 * MIN))
    log.delivery('d1', 'sent', at(2 * MIN))
    const result = run(log, config([campaign({ exit: 'never', goal: segmentGoal('pro', 'join') })], [pro]))
    expect(result.journeys).toMatchObject([{ exitedAt: null }])
    expect(result.deliveries).toMatchObject([{ afterExit: false }])
  })
})

describe('R20 exit is independent of the window', () => {
  it('R20: a journey that exited still converts within the windows of deliveries it received before the exit', () => {
    const log = started()
    log.identify({ country: 'FR' }, at(10 * MIN))
    log.track('Order Completed', {}, at(20 * MIN))
    const result = run(log, config([campaign({ filters: US })]))
    expect(result.journeys).toMatchObject([{ exitedAt: at(10 * MIN), convertedAt: at(20 * MIN) }])
    expect(result.conversions).toMatchObject([{ deliveryId: 'd1' }])
  })

  it('R20: a pre-exit delivery opened after the exit anchors at that open (opened mode)', () => {
    const log = started()
    log.identify({ country: 'FR' }, at(10 * MIN))
    log.delivery('d1', 'opened', at(2 * DAY))
    log.track('Order Completed', {}, at(2 * DAY + 1 * HOUR))
    const result = run(log, config([campaign({ filters: US, goal: eventGoal('Order Completed', { after: 'opened' }) })]))
    expect(result.conversions).toMatchObject([{ deliveryId: 'd1', anchorAt: at(2 * DAY) }])
  })

  it('R20: deliveries recorded after the exit are after_exit and never attributed', () => {
    const log = started()
    log.identify({ country: 'FR' }, at(10 * MIN))
    log.delivery('d2', 'sent', at(2 * DAY))
    log.track('Order Completed', {}, at(2 * DAY + 1 * HOUR))
    const result = run(log, config([campaign({ filters: US })]))
    expect(result.deliveries.map((d) => [d.deliveryId, d.afterExit])).toEqual([['d1', false], ['d2', true]])
    expect(result.conversions).toEqual([])
    // d1's window closed a day after it was sent; d2 is after_exit and does not count.
    expect(result.decisions.map((d) => d.reason)).toEqual(['outside-window'])
  })

  it('R20: with only after_exit deliveries, nothing is attributable', () => {
    const log = new Log()
    log.identify({ country: 'US' }, at(0))
    log.track('Cart Abandoned', {}, at(1 * MIN))
    log.identify({ country: 'FR' }, at(2 * MIN))
    log.delivery('d1', 'sent', at(3 * MIN))
    log.track('Order Completed', {}, at(4 * MIN))
    const result = run(log, config([campaign({ filters: US })]))
    expect(result.deliveries).toMatchObject([{ deliveryId: 'd1', afterExit: true, convertedAt: null }])
    expect(result.decisions.map((d) => d.reason)).toEqual(['no-attributable-delivery'])
  })

  it('R20: a delivery drafted before the exit but sent after it is after_exit (the person received it after the exit)', () => {
    const log = new Log()
    log.identify({ country: 'US' }, at(0))
    log.track('Cart Abandoned', {}, at(1 * MIN))
    log.delivery('d1', 'drafted', at(2 * MIN))
    log.delivery('d2', 'attempted', at(2 * MIN))
    log.delivery('d2', 'sent', at(3 * MIN))
    log.identify({ country: 'FR' }, at(4 * MIN))
    log.delivery('d1', 'sent', at(5 * MIN))
    log.track('Order Completed', {}, at(6 * MIN))
    const result = run(log, config([campaign({ filters: US })]))
    expect(result.deliveries.map((d) => [d.deliveryId, d.afterExit])).toEqual([['d1', true], ['d2', false]])
    expect(result.conversions).toMatchObject([{ deliveryId: 'd2' }])
  })

  it('R20: an after_exit delivery does not take the credit from an earlier pre-exit one', () => {
    const log = started()
    log.identify({ country: 'FR' }, at(10 * MIN))
    log.delivery('d2', 'sent', at(20 * MIN))
    log.track('Order Completed', {}, at(30 * MIN))
    const result = run(log, config([campaign({ filters: US })]))
    expect(result.conversions).toMatchObject([{ deliveryId: 'd1' }])
    expect(result.deliveries).toMatchObject([{ deliveryId: 'd1', convertedAt: at(30 * MIN) }, { deliveryId: 'd2', convertedAt: null }])
  })

  it('R20: one candidate converts every journey of the campaign whose own deliveries hold it (an exited journey and the re-entered one each convert once)', () => {
    const log = started()
    log.identify({ country: 'FR' }, at(10 * MIN))
    log.identify({ country: 'US' }, at(11 * MIN))
    log.track('Cart Abandoned', {}, at(12 * MIN))
    log.delivery('d2', 'sent', at(13 * MIN))
    log.track('Order Completed', {}, at(20 * MIN))
    const result = run(log, config([campaign({ filters: US })]))
    expect(result.journeys.map((j) => [j.exitedAt, j.convertedAt])).toEqual([[at(10 * MIN), at(20 * MIN)], [null, at(20 * MIN)]])
    expect(result.conversions.map((c) => [c.journeyId, c.deliveryId])).toEqual([
      [result.journeys[0].journeyId, 'd1'],
      [result.journeys[1].journeyId, 'd2'],
    ])
  })

  it('R20: the window does not lengthen the journey: an open journey stays open after every window closed', () => {
    const log = started()
    const result = run(log, config([campaign({ filters: US })]), at(60 * DAY))
    expect(result.journeys).toMatchObject([{ exitedAt: null, completedAt: null }])
  })
})

describe('R21 exit recorded at the input, not at the question', () => {
  it('R21: an exit is recorded at the processing time of the input that made it due, whatever `now` is', () => {
    const log = started()
    log.identify({ country: 'FR' }, at(10 * MIN))
    for (const now of [at(10 * MIN), at(1 * DAY), at(30 * DAY)]) expect(exitOf(log, 'on_unmatch', now)).toEqual({ exitedAt: at(10 * MIN), exitReason: 'unmatch' })
  })
})
