import { describe, expect, it } from 'vitest'
import {
  DAY,
  HOUR,
  Log,
  MIN,
  all,
  at,
  attr,
  campaign,
  config,
  counted,
  personAll,
  prop,
  run,
  segment,
} from './builders.ts'

const pro = segment('pro', 'all', attr('plan', 'eq', 'pro'))
const journeysOf = (log: Log, c = campaign(), now?: number) =>
  run(log, config([c], [pro]), now).journeys.map((j) => ({
    cause: j.entryCause,
    at: j.enteredAt,
    by: j.entryMessageId,
    exited: j.exitedAt,
    completed: j.completedAt,
  }))

describe('R17 entry', () => {
  const triggered = campaign({
    trigger: { kind: 'event', event: 'Cart Abandoned', where: all(prop('total', 'gt', 0)) },
    filters: personAll(attr('country', 'eq', 'US')),
  })

  it.each([
    { name: 'event, where and audience filters match', country: 'US', event: 'Cart Abandoned', total: 30, enters: true },
    { name: 'the where filter fails', country: 'US', event: 'Cart Abandoned', total: 0, enters: false },
    { name: 'the audience filters fail', country: 'FR', event: 'Cart Abandoned', total: 30, enters: false },
    { name: 'another event', country: 'US', event: 'Cart Viewed', total: 30, enters: false },
  ])('R17: event trigger: $name -> enters: $enters', ({ country, event, total, enters }) => {
    const log = new Log()
    log.identify({ country }, at(0))
    log.track(event, { total }, at(1 * MIN))
    const expected = enters ? [{ cause: 'event_trigger', at: at(1 * MIN), by: 'm2', exited: null, completed: null }] : []
    expect(journeysOf(log, triggered)).toEqual(expected)
  })

  it('R17: an identify is never an event trigger', () => {
    const log = new Log()
    log.add('identify', 'Cart Abandoned', {}, at(0))
    expect(journeysOf(log)).toEqual([])
  })

  it.each([
    { name: 'joins the trigger segment, audience matches', traits: { plan: 'pro', country: 'US' }, enters: true },
    { name: 'joins the trigger segment, audience fails', traits: { plan: 'pro', country: 'FR' }, enters: false },
    { name: 'does not join', traits: { plan: 'free', country: 'US' }, enters: false },
  ])('R17: segment trigger: $name -> enters: $enters', ({ traits, enters }) => {
    const c = campaign({ trigger: { kind: 'segment', segment: 'pro' }, filters: personAll(attr('country', 'eq', 'US')) })
    const log = new Log()
    log.identify(traits, at(0))
    expect(journeysOf(log, c)).toEqual(enters ? [{ cause: 'segment_trigger', at: at(0), by: 'm1', exited: null, completed: null }] : [])
  })

  it('R17: a segment trigger after an exit (leave, then rejoin) starts a new journey; a delivery in between is after_exit', () => {
    const c = campaign({ trigger: { kind: 'segment', segment: 'pro' } })
    const log = new Log()
    log.identify({ plan: 'pro' }, at(0))
    log.identify({ plan: 'free' }, at(1 * MIN))
    log.delivery('d1', 'sent', at(2 * MIN))
    log.identify({ plan: 'pro' }, at(3 * MIN))
    const result = run(log, config([c], [pro]))
    expect(journeysOf(log, c)).toEqual([
      { cause: 'segment_trigger', at: at(0), by: 'm1', exited: at(1 * MIN), completed: null },
      { cause: 'segment_trigger', at: at(3 * MIN), by: 'm4', exited: null, completed: null },
    ])
    expect(result.deliveries).toMatchObject([{ deliveryId: 'd1', journeyId: result.journeys[0].journeyId, afterExit: true }])
  })

  it('R17: a time-caused join of the trigger segment (R23) enters at that instant, with no entry message', () => {
    const lapsed = segment('lapsed', 'all', attr('customer', 'eq', true), counted('Order Completed', 'eq', 0, 30 * DAY))
    const c = campaign({ trigger: { kind: 'segment', segment: 'lapsed' } })
    const log = new Log()
    log.identify({ customer: true }, at(0))
    log.track('Order Completed', {}, at(1 * DAY))
    const result = run(log, config([c], [lapsed]), at(60 * DAY))
    expect(result.memberships.map((m) => [m.joinedAt, m.joinMessageId, m.leftAt, m.leaveMessageId])).toEqual([
      [at(0), 'm1', at(1 * DAY), 'm2'],
      [at(31 * DAY), null, null, null],
    ])
    expect(result.journeys.map((j) => [j.entryCause, j.enteredAt, j.entryMessageId])).toEqual([
      ['segment_trigger', at(0), 'm1'],
      ['segment_trigger', at(31 * DAY), null],
    ])
  })

  it('R17: a segment trigger enters on joining, not on staying in the segment', () => {
    const c = campaign({ trigger: { kind: 'segment', segment: 'pro' }, exit: 'never' })
    const log = new Log()
    log.identify({ plan: 'pro' }, at(0))
    log.identify({ plan: 'pro', name: 'Ada' }, at(1 * MIN))
    expect(journeysOf(log, c).map((j) => j.by)).toEqual(['m1'])
  })

  it('R17: a delivery for a person with no journey opens one, without checking the audience filters', () => {
    const log = new Log()
    log.identify({ country: 'FR' }, at(0))
    log.delivery('d1', 'sent', at(1 * MIN))
    const c = campaign({ filters: personAll(attr('country', 'eq', 'US')), exit: 'never' })
    const result = run(log, config([c]))
    expect(result.journeys).toMatchObject([{ entryCause: 'delivery', enteredAt: at(1 * MIN), entryMessageId: 'm2', exitedAt: null }])
    expect(result.deliveries).toMatchObject([{ deliveryId: 'd1', journeyId: result.journeys[0].journeyId, afterExit: false }])
  })

  it('R17: a delivery naming the campaign by one of its external ids opens a journey in it', () => {
    const log = new Log()
    log.delivery('d1', 'sent', at(0), { campaign: '42' })
    log.delivery('d2', 'sent', at(0), { campaign: 'unknown' })
    const result = run(log, config([campaign({ externalIds: ['42'] })]))
    expect(result.journeys).toMatchObject([{ campaignKey: 'c1', entryCause: 'delivery' }])
    expect(result.deliveries.map((d) => d.deliveryId)).toEqual(['d1'])
  })

  it('R17: a campaign without a trigger is entered only by its deliveries', () => {
    const log = new Log()
    log.track('Cart Abandoned', {}, at(0))
    log.delivery('d1', 'sent', at(1 * MIN))
    const result = run(log, config([campaign({ trigger: undefined })]))
    expect(result.journeys).toMatchObject([{ entryCause: 'delivery', enteredAt: at(1 * MIN) }])
  })

  it('R17: at most one active journey: a trigger during an active journey starts nothing', () => {
    const log = new Log()
    log.track('Cart Abandoned', {}, at(0))
    log.track('Cart Abandoned', {}, at(1 * HOUR))
    expect(journeysOf(log).map((j) => j.by)).toEqual(['m1'])
  })

  it('R17: a delivery during an active journey attaches to it', () => {
    const log = new Log()
    log.track('Cart Abandoned', {}, at(0))
    log.delivery('d1', 'sent', at(1 * MIN))
    log.delivery('d2', 'sent', at(2 * MIN))
    const result = run(log, config([campaign()]))
    expect(result.journeys).toHaveLength(1)
    expect(result.deliveries.map((d) => [d.deliveryId, d.journeyId, d.afterExit])).toEqual([
      ['d1', result.journeys[0].journeyId, false],
      ['d2', result.journeys[0].journeyId, false],
    ])
  })

  it('R17: a delivery after an exit attaches to the exited journey as after_exit', () => {
    const c = campaign({ filters: personAll(attr('country', 'eq', 'US')) })
    const log = new Log()
    log.identify({ country: 'US' }, at(0))
    log.track('Cart Abandoned', {}, at(1 * MIN))
    log.identify({ country: 'FR' }, at(2 * MIN))
    log.delivery('d1', 'sent', at(3 * MIN))
    const result = run(log, config([c]))
    expect(result.journeys).toMatchObject([{ exitedAt: at(2 * MIN), exitReason: 'unmatch' }])
    expect(result.deliveries).toMatchObject([{ deliveryId: 'd1', journeyId: result.journeys[0].journeyId, afterExit: true }])
  })

  it('R17: only a trigger starts a new journey after an exit', () => {
    const c = campaign({ filters: personAll(attr('country', 'eq', 'US')) })
    const log = new Log()
    log.identify({ country: 'US' }, at(0))
    log.track('Cart Abandoned', {}, at(1 * MIN))
    log.identify({ country: 'FR' }, at(2 * MIN))
    log.identify({ country: 'US' }, at(3 * MIN))
    log.delivery('d1', 'sent', at(4 * MIN))
    log.track('Cart Abandoned', {}, at(5 * MIN))
    log.delivery('d2', 'sent', at(6 * MIN))
    const result = run(log, config([c]))
    expect(result.journeys.map((j) => [j.entryMessageId, j.exitedAt])).toEqual([['m2', at(2 * MIN)], ['m6', null]])
    expect(result.deliveries.map((d) => [d.deliveryId, d.journeyId, d.afterExit])).toEqual([
      ['d1', result.journeys[0].journeyId, true],
      ['d2', result.journeys[1].journeyId, false],
    ])
  })

  it('R17: after completion a delivery opens a new journey', () => {
    const log = new Log()
    log.track('Cart Abandoned', {}, at(0))
    log.delivery('d1', 'sent', at(1 * MIN))
    log.completed('c1', at(2 * MIN))
    log.delivery('d2', 'sent', at(3 * MIN))
    const result = run(log, config([campaign()]))
    expect(result.journeys.map((j) => [j.entryCause, j.completedAt])).toEqual([['event_trigger', at(2 * MIN)], ['delivery', null]])
    expect(result.deliveries.map((d) => d.journeyId)).toEqual(result.journeys.map((j) => j.journeyId))
  })

  it('R17: after completion a trigger opens a new journey', () => {
    const log = new Log()
    log.track('Cart Abandoned', {}, at(0))
    log.completed('c1', at(2 * MIN))
    log.track('Cart Abandoned', {}, at(3 * MIN))
    expect(journeysOf(log).map((j) => [j.by, j.completed])).toEqual([['m1', at(2 * MIN)], ['m3', null]])
  })

  it('R17: later lifecycle events of a delivery stay with its journey, even after that journey completed', () => {
    const log = new Log()
    log.track('Cart Abandoned', {}, at(0))
    log.delivery('d1', 'sent', at(1 * MIN))
    log.completed('c1', at(2 * MIN))
    log.delivery('d1', 'opened', at(3 * MIN))
    const result = run(log, config([campaign()]))
    expect(result.journeys).toHaveLength(1)
    expect(result.deliveries).toMatchObject([{ deliveryId: 'd1', journeyId: result.journeys[0].journeyId }])
  })

  it('R17: inputs from before the campaign existed can open journeys (a campaign has no start time)', () => {
    const log = new Log()
    log.track('Cart Abandoned', {}, at(-400 * DAY))
    expect(journeysOf(log, campaign(), at(-400 * DAY))).toHaveLength(1)
  })

  it('R17: journeys of two campaigns are independent', () => {
    const c2 = campaign({ key: 'c2', trigger: { kind: 'event', event: 'Signed Up' } })
    const log = new Log()
    log.track('Cart Abandoned', {}, at(0))
    log.track('Signed Up', {}, at(1 * MIN))
    log.delivery('d1', 'sent', at(2 * MIN), { campaign: 'c2' })
    const result = run(log, config([campaign(), c2]))
    expect(result.journeys.map((j) => j.campaignKey)).toEqual(['c1', 'c2'])
    expect(result.deliveries).toMatchObject([{ deliveryId: 'd1', campaignKey: 'c2', journeyId: result.journeys[1].journeyId }])
  })
})

describe('R22 completion', () => {
  it('R22: `Journey Completed` with the campaign_id completes the active journey at its processing time', () => {
    const log = new Log()
    log.track('Cart Abandoned', {}, at(0))
    log.completed('c1', at(1 * HOUR))
    expect(journeysOf(log)).toMatchObject([{ completed: at(1 * HOUR), exited: null }])
  })

  it('R22: `Journey Completed` may name the campaign by an external id', () => {
    const log = new Log()
    log.track('Cart Abandoned', {}, at(0))
    log.completed('42', at(1 * HOUR))
    expect(journeysOf(log, campaign({ externalIds: ['42'] }))).toMatchObject([{ completed: at(1 * HOUR) }])
  })

  it('R22: `Journey Completed` may name the campaign by canvas_id (CONTRACT.md identifier properties)', () => {
    const log = new Log()
    log.track('Cart Abandoned', {}, at(0))
    log.track('Journey Completed', { canvas_id: 'c1' }, at(1 * HOUR))
    expect(journeysOf(log)).toMatchObject([{ completed: at(1 * HOUR) }])
  })

  it('R22: `Journey Completed` for another campaign completes nothing', () => {
    const log = new Log()
    log.track('Cart Abandoned', {}, at(0))
    log.completed('other', at(1 * HOUR))
    expect(journeysOf(log)).toMatchObject([{ completed: null }])
  })

  it.each([
    { name: 'the journey_id the sender gave its deliveries', journeyId: 'sender-j1', completes: true },
    { name: 'an unknown journey_id', journeyId: 'sender-j9', completes: false },
  ])('R22: `Journey Completed` naming $name completes: $completes', ({ journeyId, completes }) => {
    const log = new Log()
    log.track('Cart Abandoned', {}, at(0))
    log.delivery('d1', 'sent', at(1 * MIN), { journeyRef: 'sender-j1' })
    log.completed('c1', at(1 * HOUR), journeyId)
    expect(journeysOf(log)).toMatchObject([{ completed: completes ? at(1 * HOUR) : null }])
  })

  it('R22: `Journey Completed` may name goalpost\'s own journey id', () => {
    const log = new Log()
    log.track('Cart Abandoned', {}, at(0))
    const journeyId = run(log, config([campaign()])).journeys[0].journeyId
    log.completed('c1', at(1 * HOUR), journeyId)
    expect(journeysOf(log)).toMatchObject([{ completed: at(1 * HOUR) }])
  })

  it('R22: `Journey Completed` does not complete an exited journey', () => {
    const c = campaign({ filters: personAll(attr('country', 'eq', 'US')) })
    const log = new Log()
    log.identify({ country: 'US' }, at(0))
    log.track('Cart Abandoned', {}, at(1 * MIN))
    log.identify({ country: 'FR' }, at(2 * MIN))
    log.completed('c1', at(3 * MIN))
    expect(journeysOf(log, c)).toMatchObject([{ exited: at(2 * MIN), completed: null }])
  })

  it('R22: journey_ttl completes the journey at exactly entered_at + ttl, noticed by a time tick', () => {
    const c = campaign({ journeyTtlMs: 7 * DAY })
    const log = new Log()
    log.track('Cart Abandoned', {}, at(0))
    const before = run(log, config([c]), at(7 * DAY - 1))
    expect(before.journeys[0].completedAt).toBeNull()
    expect(before.nextWakeAt).toBe(at(7 * DAY))
    const after = run(log, config([c]), at(30 * DAY))
    expect(after.journeys[0].completedAt).toBe(at(7 * DAY))
    expect(after.nextWakeAt).toBeNull()
  })

  it('R22: journey_ttl completion comes before an input processed at the same instant (which then opens a new journey)', () => {
    const c = campaign({ journeyTtlMs: 7 * DAY })
    const log = new Log()
    log.track('Cart Abandoned', {}, at(0))
    log.track('Cart Abandoned', {}, at(7 * DAY))
    expect(journeysOf(log, c).map((j) => [j.by, j.completed])).toEqual([['m1', at(7 * DAY)], ['m2', null]])
  })

  it('R22: a completed journey still converts within the windows of the deliveries it already has', () => {
    const log = new Log()
    log.track('Cart Abandoned', {}, at(0))
    log.delivery('d1', 'sent', at(1 * MIN))
    log.completed('c1', at(2 * MIN))
    log.track('Order Completed', {}, at(3 * MIN))
    const result = run(log, config([campaign()]))
    expect(result.conversions).toMatchObject([{ journeyId: result.journeys[0].journeyId, deliveryId: 'd1' }])
  })

  it('R22: a journey completed by journey_ttl still converts within its deliveries\' windows', () => {
    const c = campaign({ journeyTtlMs: 1 * HOUR })
    const log = new Log()
    log.track('Cart Abandoned', {}, at(0))
    log.delivery('d1', 'sent', at(50 * MIN))
    log.track('Order Completed', {}, at(2 * HOUR))
    const result = run(log, config([c]))
    expect(result.journeys).toMatchObject([{ completedAt: at(1 * HOUR) }])
    expect(result.conversions).toMatchObject([{ deliveryId: 'd1', convertedAt: at(2 * HOUR) }])
  })
})
