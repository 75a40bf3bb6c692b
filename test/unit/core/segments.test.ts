import { describe, expect, it } from 'vitest'
import {
  DAY,
  HOUR,
  Log,
  MIN,
  all,
  at,
  attr,
  config,
  counted,
  inSegment,
  notInSegment,
  prop,
  run,
  segment,
} from './builders.ts'
import type { PersonCondition, SegmentDef } from '../../../src/core/model.ts'

const noCampaigns = (...segments: SegmentDef[]) => config([], segments)
const members = (log: Log, segments: SegmentDef[], now?: number) =>
  run(log, noCampaigns(...segments), now).memberships.filter((m) => m.leftAt === null).map((m) => m.segmentKey).sort()

describe('R24 segment conditions', () => {
  const plan = attr('plan', 'eq', 'pro')
  const ltv = attr('lifetime_value', 'gt', 1000)

  it.each([
    { match: 'all' as const, traits: { plan: 'pro', lifetime_value: 5000 }, member: true },
    { match: 'all' as const, traits: { plan: 'pro', lifetime_value: 10 }, member: false },
    { match: 'all' as const, traits: { plan: 'free', lifetime_value: '5000' }, member: false },
    { match: 'any' as const, traits: { plan: 'free', lifetime_value: '5000' }, member: true },
    { match: 'any' as const, traits: { plan: 'free' }, member: false },
  ])('R24: match $match over attribute conditions with traits $traits -> member $member', ({ match, traits, member }) => {
    const log = new Log()
    log.identify(traits, at(0))
    expect(members(log, [segment('vip', match, plan, ltv)])).toEqual(member ? ['vip'] : [])
  })

  it('R24: a null trait removes the attribute, and the person leaves at that input', () => {
    const log = new Log()
    log.identify({ plan: 'pro', name: 'Ada' }, at(0))
    log.identify({ name: 'Ada L.' }, at(1 * MIN))
    log.identify({ plan: null }, at(2 * MIN))
    const result = run(log, noCampaigns(segment('vip', 'all', plan)))
    expect(result.memberships).toEqual([{ segmentKey: 'vip', joinedAt: at(0), leftAt: at(2 * MIN), joinMessageId: 'm1', leaveMessageId: 'm3' }])
  })

  const buyers = (withinMs?: number) =>
    segment('buyers', 'all', counted('Order Completed', 'gte', 2, withinMs, all(prop('total', 'gt', 0))))

  it.each([
    { name: 'two matching orders, no window', orders: [10, 20], within: undefined, member: true },
    { name: 'one matching order', orders: [10], within: undefined, member: false },
    { name: 'a zero-total order does not match the where filter', orders: [10, 0], within: undefined, member: false },
    { name: 'two orders a day apart, 2 day window', orders: [10, 20], within: 2 * DAY, member: true },
  ])('R24: event count condition: $name -> member $member', ({ orders, within, member }) => {
    const log = new Log()
    orders.forEach((total, i) => log.track('Order Completed', { total }, at(i * DAY)))
    expect(members(log, [buyers(within)])).toEqual(member ? ['buyers'] : [])
  })

  it('R24: an event count condition with `within` counts only events inside the rolling window', () => {
    const log = new Log()
    log.track('Order Completed', { total: 10 }, at(0))
    log.track('Order Completed', { total: 10 }, at(3 * DAY))
    const result = run(log, noCampaigns(buyers(2 * DAY)))
    expect(result.memberships).toEqual([])
  })

  it.each([
    { op: 'eq' as const, n: 0, member: true },
    { op: 'lt' as const, n: 1, member: true },
    { op: 'gte' as const, n: 1, member: false },
  ])('R24: count $op $n holds for a person with no such event: $member', ({ op, n, member }) => {
    const log = new Log()
    log.identify({ name: 'Ada' }, at(0))
    expect(members(log, [segment('inactive', 'all', counted('Order Completed', op, n))])).toEqual(member ? ['inactive'] : [])
  })

  it('R24: page calls count as `Page Viewed` events', () => {
    const log = new Log()
    log.page('Pricing', at(0))
    log.page('Docs', at(1 * MIN))
    const s = segment('readers', 'all', counted('Page Viewed', 'gte', 2))
    expect(members(log, [s])).toEqual(['readers'])
  })

  it.each([
    { name: 'in, referenced segment listed after its referrer', conditions: [inSegment('pro')], traits: { plan: 'pro' }, member: true },
    { name: 'in, not a member of the referenced segment', conditions: [inSegment('pro')], traits: { plan: 'free' }, member: false },
    { name: 'not_in, member of the referenced segment', conditions: [notInSegment('pro')], traits: { plan: 'pro' }, member: false },
    { name: 'not_in, not a member', conditions: [notInSegment('pro')], traits: { plan: 'free' }, member: true },
  ])('R24: segment reference $name -> member $member', ({ conditions, traits, member }) => {
    const log = new Log()
    log.identify(traits, at(0))
    const referrer = segment('ref', 'all', ...(conditions as PersonCondition[]))
    const pro = segment('pro', 'all', plan)
    expect(members(log, [referrer, pro]).includes('ref')).toBe(member)
  })

  it('R24: a segment reference follows the referenced segment in the same input (one join, one leave)', () => {
    const log = new Log()
    log.identify({ plan: 'free' }, at(0))
    log.identify({ plan: 'pro' }, at(1 * MIN))
    const result = run(log, noCampaigns(segment('not_pro', 'all', notInSegment('pro')), segment('pro', 'all', plan)))
    expect(result.memberships).toEqual([
      { segmentKey: 'not_pro', joinedAt: at(0), leftAt: at(1 * MIN), joinMessageId: 'm1', leaveMessageId: 'm2' },
      { segmentKey: 'pro', joinedAt: at(1 * MIN), leftAt: null, joinMessageId: 'm2', leaveMessageId: null },
    ])
  })
})

describe('R23 membership history', () => {
  const recent = segment('recent_buyer', 'all', counted('Order Completed', 'gte', 1, 1 * DAY))

  it('R23: each join and leave is kept with its processing time and the messageId that caused it', () => {
    const log = new Log()
    log.identify({ plan: 'pro' }, at(0))
    log.identify({ plan: 'free' }, at(1 * HOUR))
    log.identify({ plan: 'pro' }, at(2 * HOUR))
    const result = run(log, noCampaigns(segment('pro', 'all', attr('plan', 'eq', 'pro'))))
    expect(result.memberships).toEqual([
      { segmentKey: 'pro', joinedAt: at(0), leftAt: at(1 * HOUR), joinMessageId: 'm1', leaveMessageId: 'm2' },
      { segmentKey: 'pro', joinedAt: at(2 * HOUR), leftAt: null, joinMessageId: 'm3', leaveMessageId: null },
    ])
  })

  it('R23: a time-caused leave happens at exactly received_at + within, with no cause message', () => {
    const log = new Log()
    log.track('Order Completed', {}, at(0))
    const result = run(log, noCampaigns(recent), at(5 * DAY))
    expect(result.memberships).toEqual([{ segmentKey: 'recent_buyer', joinedAt: at(0), leftAt: at(1 * DAY), joinMessageId: 'm1', leaveMessageId: null }])
  })

  it('R23: 1 ms before received_at + within the person is still a member, and nextWakeAt is the leave instant', () => {
    const log = new Log()
    log.track('Order Completed', {}, at(0))
    const result = run(log, noCampaigns(recent), at(1 * DAY - 1))
    expect(result.memberships).toEqual([{ segmentKey: 'recent_buyer', joinedAt: at(0), leftAt: null, joinMessageId: 'm1', leaveMessageId: null }])
    expect(result.nextWakeAt).toBe(at(1 * DAY))
  })

  it('R23: the leave instant is the last counted event\'s received_at + within, and nextWakeAt steps through them', () => {
    const log = new Log()
    log.track('Order Completed', {}, at(0))
    log.track('Order Completed', {}, at(6 * HOUR))
    const early = run(log, noCampaigns(recent), at(12 * HOUR))
    expect(early.nextWakeAt).toBe(at(1 * DAY))
    const result = run(log, noCampaigns(recent), at(3 * DAY))
    expect(result.memberships).toEqual([{ segmentKey: 'recent_buyer', joinedAt: at(0), leftAt: at(1 * DAY + 6 * HOUR), joinMessageId: 'm1', leaveMessageId: null }])
    expect(result.nextWakeAt).toBeNull()
  })

  it('R23: an input processed at exactly the leave instant comes after the time-caused leave (leave, then rejoin)', () => {
    const log = new Log()
    log.track('Order Completed', {}, at(0))
    log.track('Order Completed', {}, at(1 * DAY))
    const result = run(log, noCampaigns(recent), at(1 * DAY))
    expect(result.memberships).toEqual([
      { segmentKey: 'recent_buyer', joinedAt: at(0), leftAt: at(1 * DAY), joinMessageId: 'm1', leaveMessageId: null },
      { segmentKey: 'recent_buyer', joinedAt: at(1 * DAY), leftAt: null, joinMessageId: 'm2', leaveMessageId: null },
    ])
  })

  it('R23: a time-caused leave before a later input is recorded at the instant it flipped, whatever `now` is', () => {
    const log = new Log()
    log.track('Order Completed', {}, at(0))
    log.identify({ plan: 'pro' }, at(3 * DAY))
    // `now` earlier than the last input (an evaluation started before that input was read) changes nothing.
    for (const now of [at(3 * DAY), at(0), at(10 * DAY)]) {
      const result = run(log, noCampaigns(recent), now)
      expect(result.memberships).toEqual([{ segmentKey: 'recent_buyer', joinedAt: at(0), leftAt: at(1 * DAY), joinMessageId: 'm1', leaveMessageId: null }])
    }
  })

  it('R23: a segment that references a time-driven segment leaves at the same instant', () => {
    const log = new Log()
    log.track('Order Completed', {}, at(0))
    const result = run(log, noCampaigns(segment('lapsed', 'all', notInSegment('recent_buyer')), recent), at(2 * DAY))
    expect(result.memberships.map((m) => [m.segmentKey, m.joinedAt, m.leftAt, m.joinMessageId])).toEqual([
      ['recent_buyer', at(0), at(1 * DAY), 'm1'],
      ['lapsed', at(1 * DAY), null, null],
    ])
  })
})
