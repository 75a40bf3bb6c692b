import { describe, expect, it } from 'vitest'
import { matchesFilter } from '../../../src/core/filters.ts'
import {
  DAY,
  HOUR,
  Log,
  MIN,
  all,
  any,
  at,
  attr,
  campaign,
  config,
  eventGoal,
  personAll,
  prop,
  propAttr,
  propTrigger,
  run,
  segment,
} from './builders.ts'

describe('R9 filters: match all/any', () => {
  const properties = { total: 30, currency: 'EUR', coupon: 'SPRING' }

  it.each([
    { name: 'all, every condition true', filter: all(prop('total', 'gt', 9.99), prop('currency', 'eq', 'EUR')), result: true },
    { name: 'all, one condition false', filter: all(prop('total', 'gt', 9.99), prop('currency', 'eq', 'USD')), result: false },
    { name: 'any, one condition true', filter: any(prop('total', 'gt', 100), prop('currency', 'eq', 'EUR')), result: true },
    { name: 'any, no condition true', filter: any(prop('total', 'gt', 100), prop('currency', 'eq', 'USD')), result: false },
    { name: 'all, no conditions', filter: all(), result: true },
    { name: 'any, no conditions', filter: any(), result: true },
    { name: 'exists takes no value', filter: all(prop('coupon', 'exists')), result: true },
    { name: 'not_exists on a missing property', filter: all(prop('gift', 'not_exists')), result: true },
  ])('R9: $name -> $result', ({ filter, result }) => {
    expect(matchesFilter(filter, properties)).toBe(result)
  })

  it('R9: no filter at all matches every event', () => {
    expect(matchesFilter(undefined, {})).toBe(true)
  })

  it.each([
    { name: '{attribute} equal to the property', attributes: { currency: 'EUR' }, result: true },
    { name: '{attribute} different from the property', attributes: { currency: 'USD' }, result: false },
    { name: '{attribute} missing on the person', attributes: {}, result: false },
  ])('R9: $name -> $result', ({ attributes, result }) => {
    const filter = all(propAttr('currency', 'eq', 'currency'))
    expect(matchesFilter(filter, { currency: 'EUR' }, { attributes, trigger: null })).toBe(result)
  })

  it('R9: {attribute} missing on the person: neq holds (the property differs from nothing), gt does not', () => {
    expect(matchesFilter(all(propAttr('currency', 'neq', 'currency')), { currency: 'EUR' })).toBe(true)
    expect(matchesFilter(all(propAttr('total', 'gt', 'min_total')), { total: 10 })).toBe(false)
  })

  it('R9: {attribute} and {trigger} values compare with the same operator semantics (numeric strings)', () => {
    const ctx = { attributes: { min_total: '9.99' }, trigger: { total: '30' } }
    expect(matchesFilter(all(propAttr('total', 'gt', 'min_total'), propTrigger('total', 'eq', 'total')), { total: 30 }, ctx)).toBe(true)
  })

  it.each([
    { name: '{trigger} property equal', trigger: { cart_id: 'k1' }, op: 'eq' as const, result: true },
    { name: '{trigger} property different', trigger: { cart_id: 'k2' }, op: 'eq' as const, result: false },
    { name: 'no trigger event, eq', trigger: null, op: 'eq' as const, result: false },
    { name: 'no trigger event, even neq', trigger: null, op: 'neq' as const, result: false },
    { name: 'no trigger event, even not_in', trigger: null, op: 'not_in' as const, result: false },
  ])('R9: $name -> $result (false when the journey had no trigger event)', ({ trigger, op, result }) => {
    const filter = all(propTrigger('cart_id', op, 'cart_id'))
    expect(matchesFilter(filter, { cart_id: 'k1' }, { attributes: {}, trigger })).toBe(result)
  })
})

describe('R9 references in a goal, through a journey', () => {
  const goal = eventGoal('Order Completed', { where: all(propAttr('currency', 'eq', 'currency')) })

  it('R9: {attribute} is the value at the event\'s processing time: set after entry but before the purchase counts', () => {
    const log = new Log()
    log.identify({ currency: 'USD' }, at(0))
    log.track('Cart Abandoned', {}, at(1 * MIN))
    log.delivery('d1', 'sent', at(2 * MIN))
    log.identify({ currency: 'EUR' }, at(3 * MIN))
    log.track('Order Completed', { currency: 'EUR' }, at(4 * MIN))
    const result = run(log, config([campaign({ goal })]))
    expect(result.conversions).toHaveLength(1)
    expect(result.conversions[0].eventMessageId).toBe('m5')
  })

  it('R9: {attribute} is the value at the event\'s processing time: a change after the purchase does not count', () => {
    const log = new Log()
    log.identify({ currency: 'USD' }, at(0))
    log.track('Cart Abandoned', {}, at(1 * MIN))
    log.delivery('d1', 'sent', at(2 * MIN))
    log.track('Order Completed', { currency: 'EUR' }, at(3 * MIN))
    log.identify({ currency: 'EUR' }, at(4 * MIN))
    const result = run(log, config([campaign({ goal })]))
    expect(result.conversions).toHaveLength(0)
  })

  const cartGoal = eventGoal('Order Completed', { where: all(propTrigger('cart_id', 'eq', 'cart_id')) })

  it.each([
    { cart: 'k1', converts: true },
    { cart: 'k2', converts: false },
  ])('R9: {trigger} compares with the journey\'s trigger event: order for cart $cart converts: $converts', ({ cart, converts }) => {
    const log = new Log()
    log.track('Cart Abandoned', { cart_id: 'k1' }, at(0))
    log.delivery('d1', 'sent', at(1 * MIN))
    log.track('Order Completed', { cart_id: cart }, at(2 * MIN))
    const result = run(log, config([campaign({ goal: cartGoal })]))
    expect(result.conversions.length === 1).toBe(converts)
  })

  it('R9: {trigger} is false for a journey entered by a delivery (no trigger event)', () => {
    const log = new Log()
    log.delivery('d1', 'sent', at(0))
    log.track('Order Completed', { cart_id: 'k1' }, at(1 * MIN))
    const result = run(log, config([campaign({ goal: cartGoal })]))
    expect(result.journeys).toHaveLength(1)
    expect(result.journeys[0].entryCause).toBe('delivery')
    expect(result.conversions).toHaveLength(0)
  })

  it('R9: {trigger} is false for a journey entered by a segment trigger (no trigger event)', () => {
    const vip = segment('vip', 'all', attr('plan', 'eq', 'pro'))
    const c = campaign({ trigger: { kind: 'segment', segment: 'vip' }, goal: eventGoal('Order Completed', { where: all(propTrigger('plan', 'not_exists', 'plan')) }) })
    const log = new Log()
    log.identify({ plan: 'pro' }, at(0))
    log.delivery('d1', 'sent', at(1 * HOUR))
    log.track('Order Completed', {}, at(2 * HOUR))
    const result = run(log, config([c], [vip]))
    expect(result.journeys.map((j) => j.entryCause)).toEqual(['segment_trigger'])
    expect(result.conversions).toHaveLength(0)
    expect(result.decisions).toEqual([])
  })

  it('R9: trigger where filters can use {attribute} at the trigger event\'s processing time', () => {
    const c = campaign({
      trigger: { kind: 'event', event: 'Cart Abandoned', where: all(propAttr('currency', 'eq', 'currency')) },
      filters: personAll(attr('currency', 'exists')),
    })
    const log = new Log()
    log.identify({ currency: 'EUR' }, at(0))
    log.track('Cart Abandoned', { currency: 'USD' }, at(1 * DAY))
    log.track('Cart Abandoned', { currency: 'EUR' }, at(2 * DAY))
    const result = run(log, config([c]))
    expect(result.journeys.map((j) => j.entryMessageId)).toEqual(['m3'])
  })
})
