import { describe, expect, it } from 'vitest'
import { goalVersionAt } from '../../../src/core/goals.ts'
import {
  DAY,
  HOUR,
  LONG_AGO,
  Log,
  MIN,
  at,
  attr,
  campaign,
  config,
  counted,
  eventGoal,
  run,
  segment,
  segmentGoal,
  versions,
} from './builders.ts'

const ORDER = eventGoal('Order Completed')
const SUBSCRIBE = eventGoal('Subscription Started')

/** Cart abandoned at 0, message sent at 1 min; then the given inputs. */
function journeyWithMessage(): Log {
  const log = new Log()
  log.track('Cart Abandoned', {}, at(0))
  log.delivery('d1', 'sent', at(1 * MIN))
  return log
}

describe('R8 goal kinds', () => {
  it('R8: an event goal converts on the named event', () => {
    const log = journeyWithMessage()
    log.track('Order Completed', {}, at(10 * MIN))
    const [conversion] = run(log, config([campaign({ goal: ORDER })])).conversions
    expect(conversion).toMatchObject({ goalType: 'event', deliveryId: 'd1', convertedAt: at(10 * MIN), eventMessageId: 'm3', goalVersion: 1 })
  })

  it('R8: an event goal ignores other events', () => {
    const log = journeyWithMessage()
    log.track('Product Viewed', {}, at(10 * MIN))
    expect(run(log, config([campaign({ goal: ORDER })])).conversions).toEqual([])
  })

  const pro = segment('pro', 'all', attr('plan', 'eq', 'pro'))

  it('R8: a join goal converts when the person joins the segment', () => {
    const log = journeyWithMessage()
    log.identify({ plan: 'pro' }, at(10 * MIN))
    const result = run(log, config([campaign({ goal: segmentGoal('pro', 'join') })], [pro]))
    expect(result.conversions).toMatchObject([{ goalType: 'segment', deliveryId: 'd1', convertedAt: at(10 * MIN), value: null }])
  })

  it('R8: a leave goal converts when the person leaves the segment', () => {
    const log = new Log()
    log.identify({ plan: 'pro' }, at(0))
    log.track('Cart Abandoned', {}, at(1 * MIN))
    log.delivery('d1', 'sent', at(2 * MIN))
    log.identify({ plan: 'free' }, at(10 * MIN))
    const result = run(log, config([campaign({ goal: segmentGoal('pro', 'leave') })], [pro]))
    expect(result.conversions).toMatchObject([{ goalType: 'segment', deliveryId: 'd1', convertedAt: at(10 * MIN), eventMessageId: 'm4' }])
  })
})

describe('R13 goal versions', () => {
  it('R13: the version in force is the highest one whose effective_from is not after t', () => {
    const c = campaign({ goals: versions([at(0), ORDER], [at(2 * HOUR), SUBSCRIBE], [at(1 * HOUR), null]) })
    expect(goalVersionAt(c, at(-1))).toBeNull()
    expect(goalVersionAt(c, at(0))).toEqual({ version: 1, goal: ORDER })
    expect(goalVersionAt(c, at(1 * HOUR - 1))).toEqual({ version: 1, goal: ORDER })
    // v3 (saved after v2, effective_from before it: a backfill) is in force from its effective_from on.
    expect(goalVersionAt(c, at(1 * HOUR))).toEqual({ version: 3, goal: null })
    expect(goalVersionAt(c, at(5 * HOUR))).toEqual({ version: 3, goal: null })
  })

  it.each([
    { name: 'a purchase before the edit is judged by v1 and converts', event: 'Order Completed', t: 30 * MIN, version: 1 },
    { name: 'a purchase after the edit is judged by v2 and does not convert', event: 'Order Completed', t: 2 * HOUR, version: null },
    { name: 'a subscription before the edit is judged by v1 and does not convert', event: 'Subscription Started', t: 30 * MIN, version: null },
    { name: 'a subscription after the edit is judged by v2 and converts', event: 'Subscription Started', t: 2 * HOUR, version: 2 },
  ])('R13: a candidate is judged by the version in force at its processing time: $name', ({ event, t, version }) => {
    const c = campaign({ goals: versions([LONG_AGO, ORDER], [at(1 * HOUR), SUBSCRIBE]) })
    const log = journeyWithMessage()
    log.track(event, {}, at(t))
    const conversions = run(log, config([c])).conversions
    expect(conversions.map((x) => x.goalVersion)).toEqual(version === null ? [] : [version])
  })

  it('R13: the version at the edit instant itself is the new one (effective_from inclusive)', () => {
    const c = campaign({ goals: versions([LONG_AGO, ORDER], [at(1 * HOUR), SUBSCRIBE]) })
    const log = journeyWithMessage()
    log.track('Order Completed', {}, at(1 * HOUR))
    log.track('Subscription Started', {}, at(1 * HOUR))
    expect(run(log, config([c])).conversions).toMatchObject([{ goalVersion: 2, eventMessageId: 'm4' }])
  })

  it('R13: a conversion recorded before an edit stays, even when the new version would not have counted it', () => {
    const c = campaign({ goals: versions([LONG_AGO, ORDER], [at(1 * HOUR), eventGoal('Order Completed', { within: 1 * MIN })]) })
    const log = journeyWithMessage()
    log.track('Order Completed', {}, at(30 * MIN))
    expect(run(log, config([c]), at(2 * HOUR)).conversions).toMatchObject([{ goalVersion: 1, convertedAt: at(30 * MIN) }])
  })

  it('R13: a version whose effective_from lies in the past judges every input processed since then', () => {
    // v2 was saved after these inputs, with effective_from before them: an operator's backfill.
    const c = campaign({ goals: versions([LONG_AGO, ORDER], [at(-1 * DAY), SUBSCRIBE]) })
    const log = journeyWithMessage()
    log.track('Order Completed', {}, at(10 * MIN))
    log.track('Subscription Started', {}, at(20 * MIN))
    expect(run(log, config([c])).conversions).toMatchObject([{ goalVersion: 2, eventMessageId: 'm4' }])
  })

  it('R13: a goal removed by a later version converts nothing from then on', () => {
    const c = campaign({ goals: versions([LONG_AGO, ORDER], [at(1 * HOUR), null]) })
    const log = journeyWithMessage()
    log.track('Order Completed', {}, at(2 * HOUR))
    const result = run(log, config([c]))
    expect(result.conversions).toEqual([])
    expect(result.decisions).toEqual([])
  })
})

describe('R14 goal must precede entry', () => {
  it('R14: a journey entered before any goal was in force never converts, even after a goal is added', () => {
    const c = campaign({ goals: versions([at(1 * HOUR), ORDER]) })
    const log = journeyWithMessage()
    log.delivery('d2', 'sent', at(2 * HOUR))
    log.track('Order Completed', {}, at(3 * HOUR))
    const result = run(log, config([c]))
    expect(result.journeys).toMatchObject([{ enteredAt: at(0), goalVersion: null }])
    expect(result.conversions).toEqual([])
    expect(result.decisions).toMatchObject([{ messageId: 'm4', converts: false, reason: 'no-goal-at-entry' }])
  })

  it('R14: a journey entered after the goal was added converts', () => {
    const c = campaign({ goals: versions([at(1 * HOUR), ORDER]) })
    const log = new Log()
    log.track('Cart Abandoned', {}, at(2 * HOUR))
    log.delivery('d1', 'sent', at(2 * HOUR + 1))
    log.track('Order Completed', {}, at(3 * HOUR))
    const result = run(log, config([c]))
    expect(result.journeys).toMatchObject([{ goalVersion: 1 }])
    expect(result.conversions).toMatchObject([{ deliveryId: 'd1', goalVersion: 1 }])
  })

  it('R14: a campaign without a goal records journeys but no conversions', () => {
    const log = journeyWithMessage()
    log.track('Order Completed', {}, at(10 * MIN))
    const result = run(log, config([campaign({ goal: null })]))
    expect(result.journeys).toMatchObject([{ goalVersion: null }])
    expect(result.conversions).toEqual([])
  })

  it('R14: a journey whose goal was removed and then re-added converts under the re-added version', () => {
    const c = campaign({ goals: versions([LONG_AGO, ORDER], [at(1 * HOUR), null], [at(2 * HOUR), SUBSCRIBE]) })
    const log = journeyWithMessage()
    log.track('Subscription Started', {}, at(3 * HOUR))
    expect(run(log, config([c]), at(3 * HOUR)).conversions).toMatchObject([{ goalVersion: 3 }])
  })
})

describe('R14b segment goal inputs', () => {
  it('R14b: event_message_id of a segment goal conversion is the messageId of the input that caused the join', () => {
    const log = journeyWithMessage()
    log.track('Order Completed', {}, at(10 * MIN))
    const buyers = segment('buyers', 'all', counted('Order Completed', 'gte', 1))
    const result = run(log, config([campaign({ goal: segmentGoal('buyers', 'join') })], [buyers]))
    expect(result.conversions).toMatchObject([{ goalType: 'segment', eventMessageId: 'm3', convertedAt: at(10 * MIN) }])
  })

  it('R14b: event_message_id is null when time alone caused the membership change', () => {
    const recent = segment('recent', 'all', counted('Product Viewed', 'gte', 1, 1 * HOUR))
    const log = new Log()
    log.track('Product Viewed', {}, at(0))
    log.track('Cart Abandoned', {}, at(1 * MIN))
    log.delivery('d1', 'sent', at(2 * MIN))
    const result = run(log, config([campaign({ goal: segmentGoal('recent', 'leave') })], [recent]), at(1 * DAY))
    expect(result.conversions).toMatchObject([{ goalType: 'segment', eventMessageId: null, convertedAt: at(1 * HOUR) }])
  })
})

describe('R15 segment goals and prior membership', () => {
  const pro = segment('pro', 'all', attr('plan', 'eq', 'pro'))

  it('R15: join goal, person already in the segment at entry: never converts, even after leaving and rejoining', () => {
    const log = new Log()
    log.identify({ plan: 'pro' }, at(0))
    log.track('Cart Abandoned', {}, at(1 * MIN))
    log.delivery('d1', 'sent', at(2 * MIN))
    log.identify({ plan: 'free' }, at(3 * MIN))
    log.identify({ plan: 'pro' }, at(4 * MIN))
    const result = run(log, config([campaign({ goal: segmentGoal('pro', 'join'), exit: 'never' })], [pro]))
    expect(result.conversions).toEqual([])
    expect(result.decisions).toMatchObject([{ converts: false, reason: 'goal-met-at-entry', messageId: 'm5' }])
  })

  it('R15: leave goal, person already outside the segment at entry: never converts, even after joining and leaving', () => {
    const log = new Log()
    log.track('Cart Abandoned', {}, at(1 * MIN))
    log.delivery('d1', 'sent', at(2 * MIN))
    log.identify({ plan: 'pro' }, at(3 * MIN))
    log.identify({ plan: 'free' }, at(4 * MIN))
    const result = run(log, config([campaign({ goal: segmentGoal('pro', 'leave'), exit: 'never' })], [pro]))
    expect(result.conversions).toEqual([])
    expect(result.decisions).toMatchObject([{ converts: false, reason: 'goal-met-at-entry' }])
  })

  it('R15: join goal, person outside the segment at entry converts on joining', () => {
    const log = new Log()
    log.identify({ plan: 'free' }, at(0))
    log.track('Cart Abandoned', {}, at(1 * MIN))
    log.delivery('d1', 'sent', at(2 * MIN))
    log.identify({ plan: 'pro' }, at(3 * MIN))
    const result = run(log, config([campaign({ goal: segmentGoal('pro', 'join') })], [pro]))
    expect(result.conversions).toMatchObject([{ deliveryId: 'd1', eventMessageId: 'm4' }])
  })

  it('R15: membership at entry counts even when the goal became a segment goal after entry (R13)', () => {
    const c = campaign({ goals: versions([LONG_AGO, ORDER], [at(5 * MIN), segmentGoal('pro', 'join')]), exit: 'never' })
    const log = new Log()
    log.identify({ plan: 'pro' }, at(0))
    log.track('Cart Abandoned', {}, at(1 * MIN))
    log.delivery('d1', 'sent', at(2 * MIN))
    log.identify({ plan: 'free' }, at(10 * MIN))
    log.identify({ plan: 'pro' }, at(11 * MIN))
    const result = run(log, config([c], [pro]))
    expect(result.conversions).toEqual([])
    expect(result.decisions).toMatchObject([{ reason: 'goal-met-at-entry' }])
  })
})

describe('R16 conversion value', () => {
  it.each([
    { name: 'a number', properties: { total: 42.5 }, value: 42.5 },
    { name: 'a numeric string', properties: { total: '12.50' }, value: 12.5 },
    { name: 'zero', properties: { total: 0 }, value: 0 },
    { name: 'absent', properties: {}, value: null },
    { name: 'null', properties: { total: null }, value: null },
    { name: 'a non-numeric string', properties: { total: 'twelve' }, value: null },
    { name: 'a formatted amount', properties: { total: '1,000' }, value: null },
    { name: 'a boolean', properties: { total: true }, value: null },
    { name: 'an object', properties: { total: { amount: 3 } }, value: null },
  ])('R16: value property $name -> $value', ({ properties, value }) => {
    const log = journeyWithMessage()
    log.track('Order Completed', properties, at(10 * MIN))
    const result = run(log, config([campaign({ goal: eventGoal('Order Completed', { value: 'total' }) })]))
    expect(result.conversions).toHaveLength(1)
    expect(result.conversions[0].value).toBe(value)
  })

  it('R16: the value property may be a dot path', () => {
    const log = journeyWithMessage()
    log.track('Order Completed', { order: { total: '99' } }, at(10 * MIN))
    const result = run(log, config([campaign({ goal: eventGoal('Order Completed', { value: 'order.total' }) })]))
    expect(result.conversions[0].value).toBe(99)
  })

  it('R16: a goal that names no value property records null', () => {
    const log = journeyWithMessage()
    log.track('Order Completed', { total: 10 }, at(10 * MIN))
    expect(run(log, config([campaign()])).conversions[0].value).toBeNull()
  })
})
