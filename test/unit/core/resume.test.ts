import { describe, expect, it } from 'vitest'
import { DELIVERY_MEMORY_MS } from '../../../src/core/engine-snapshot.ts'
import type { EngineSnapshot } from '../../../src/core/engine-state.ts'
import { evaluatePerson, resumePerson, type PersonEvaluation, type PersonEvent } from '../../../src/core/evaluate-person.ts'
import { campaign, config, counted, DAY, eventGoal, HOUR, Log, segment, T0 } from './builders.ts'

/**
 * Resuming from a stored state (docs/conversions.md, "Stored state"): when
 * the engine must replay instead, and that the state stays the same size
 * however long the history grows. That a resumed evaluation gives the rows of
 * a replay is proven over random streams in test/integration/incremental.test.ts.
 */

const cfg = config([campaign({ trigger: undefined })])
/** As stored: JSON in, JSON out. */
const stored = (r: PersonEvaluation): EngineSnapshot => JSON.parse(JSON.stringify(r.snapshot))
const never = () => false

/** Evaluates `log`'s inputs up to `split` as one evaluation, then resumes with the rest. */
function splitAt(log: Log, split: number, now: number, storedBefore: (id: string) => boolean = never) {
  const first = evaluatePerson('p1', log.events.slice(0, split), cfg, log.events[split - 1].receivedAt)
  return resumePerson('p1', stored(first), log.events.slice(split), cfg, now, storedBefore)
}

describe('resuming from a stored state', () => {
  it('R3: an input that sorts before the watermark is not folded in: the log is replayed', () => {
    const log = new Log()
    log.delivery('d1', 'delivered', T0)
    log.track('Order Completed', {}, T0 + 2 * HOUR)
    log.track('Order Completed', {}, T0 + HOUR) // a webhook retry: persisted later, processed earlier
    expect(splitAt(log, 2, T0 + 3 * HOUR)).toEqual({ replay: 'late-input' })
  })

  it('R3, R22: an input before an instant already processed (a journey_ttl completion) is replayed', () => {
    const ttl = config([campaign({ trigger: undefined, journeyTtlMs: DAY })])
    const log = new Log()
    log.delivery('d1', 'delivered', T0)
    const first = evaluatePerson('p1', log.events, ttl, T0 + 2 * DAY) // completed at T0 + 1 day
    expect(first.snapshot.t).toBe(T0 + DAY)
    const late = log.track('Order Completed', {}, T0 + 20 * HOUR)
    expect(resumePerson('p1', stored(first), [late], ttl, T0 + 2 * DAY, never)).toEqual({ replay: 'late-input' })
  })

  it('R5: a bounce of a delivery already credited with a conversion takes it back: the log is replayed', () => {
    const log = new Log()
    log.delivery('d1', 'delivered', T0)
    log.track('Order Completed', {}, T0 + HOUR)
    log.delivery('d1', 'revoked', T0 + 2 * HOUR)
    expect(splitAt(log, 2, T0 + 3 * HOUR)).toEqual({ replay: 'revoked-credited-delivery' })
    expect(evaluatePerson('p1', log.events, cfg, T0 + 3 * HOUR).conversions).toEqual([]) // what the replay gives
  })

  it('R5: a bounce of a delivery not credited is folded in: no later candidate converts through it', () => {
    const log = new Log()
    log.delivery('d1', 'delivered', T0)
    log.delivery('d1', 'revoked', T0 + HOUR)
    log.track('Order Completed', {}, T0 + 2 * HOUR)
    const resumed = splitAt(log, 1, T0 + 3 * HOUR)
    if ('replay' in resumed) throw new Error(`replayed: ${resumed.replay}`)
    expect(resumed.mode).toBe('incremental')
    expect(resumed.conversions).toEqual([])
    expect(resumed.decisions.map((d) => d.reason)).toEqual(['no-attributable-delivery'])
  })

  it('an input about a delivery the state has dropped is replayed; one about a new delivery is not', () => {
    const log = new Log()
    log.delivery('d1', 'delivered', T0)
    log.identify({ plan: 'pro' }, T0 + 100 * DAY) // d1's window (1 day) and memory have long passed
    const first = evaluatePerson('p1', log.events, cfg, T0 + 100 * DAY)
    expect(first.snapshot.j.flatMap((j) => j.d ?? [])).toEqual([])
    const opened = log.delivery('d1', 'opened', T0 + 101 * DAY)
    expect(resumePerson('p1', stored(first), [opened], cfg, T0 + 101 * DAY, (id) => id === 'd1')).toEqual({ replay: 'forgotten-delivery' })
    const fresh = log.delivery('d2', 'delivered', T0 + 102 * DAY)
    expect(resumePerson('p1', stored(first), [fresh], cfg, T0 + 102 * DAY, never)).toMatchObject({ mode: 'incremental' })
  })

  it(`keeps a delivery for ${DELIVERY_MEMORY_MS / DAY} days after its last input, so opens and clicks after a conversion are folded in`, () => {
    const log = new Log()
    log.delivery('d1', 'delivered', T0)
    log.track('Order Completed', {}, T0 + HOUR)
    log.delivery('d1', 'opened', T0 + 3 * DAY)
    const resumed = splitAt(log, 2, T0 + 3 * DAY, () => true)
    if ('replay' in resumed) throw new Error(`replayed: ${resumed.replay}`)
    expect(resumed.journeys).toEqual([]) // nothing changed
    expect(resumed.deliveries).toEqual([])
  })

  it('returns only the rows that changed, and the latest journeys whatever changed', () => {
    const log = new Log()
    log.delivery('d1', 'delivered', T0)
    log.track('Order Completed', {}, T0 + HOUR)
    const resumed = splitAt(log, 1, T0 + HOUR)
    if ('replay' in resumed) throw new Error(`replayed: ${resumed.replay}`)
    const full = evaluatePerson('p1', log.events, cfg, T0 + HOUR)
    expect(resumed.conversions).toEqual(full.conversions)
    expect(resumed.journeys).toEqual(full.journeys) // the journey converted
    expect(resumed.deliveries).toEqual(full.deliveries) // the delivery converted
    expect(resumed.created).toEqual({ memberships: 0, journeys: 0, deliveries: 0 })
    expect(resumed.latestJourney('c1')).toEqual(full.latestJourney('c1'))
    expect(resumed.latestJourney('c1')?.convertedAt).toBe(T0 + HOUR)
  })
})

describe('R24 and bounded state: the stored state stays the same size however long the history', () => {
  // Three emails a week (sent, delivered, opened, clicked), a purchase a week,
  // page views, and a segment that counts purchases in a rolling 30 days
  // besides one that counts every purchase ever.
  const segments = [
    segment('recent_buyers', 'all', counted('Order Completed', 'gte', 2, 30 * DAY)),
    segment('ever_bought', 'all', counted('Order Completed', 'gte', 1)),
  ]
  const history = config([campaign({ trigger: undefined, goal: eventGoal('Order Completed', { within: 7 * DAY }) })], segments)
  function historyOf(events: number): PersonEvent[] {
    const log = new Log()
    for (let week = 0; log.events.length < events; week++) {
      const t = T0 + week * 7 * DAY
      for (let k = 0; k < 3; k++) {
        const id = `d${week}_${k}`
        log.delivery(id, 'sent', t + k * DAY)
        log.delivery(id, 'delivered', t + k * DAY + 60_000)
        log.delivery(id, 'opened', t + k * DAY + HOUR)
        log.delivery(id, 'clicked', t + k * DAY + 2 * HOUR)
      }
      log.track('Order Completed', { total: 20 }, t + 2 * DAY + 3 * HOUR)
      log.page('Pricing', t + 4 * DAY)
    }
    return log.events.slice(0, events)
  }
  const size = (events: number) => {
    const log = historyOf(events)
    return JSON.stringify(evaluatePerson('p1', log, history, log[log.length - 1].receivedAt).snapshot).length
  }

  it('bytes of state at 10, 1,000 and 10,000 earlier events: flat past the first weeks', () => {
    const [s10, s1000, s10000] = [size(10), size(1_000), size(10_000)]
    expect(s10000).toBeLessThanOrEqual(s1000 * 1.1)
    expect(s1000).toBeLessThan(4_000)
    expect(s10).toBeLessThan(s1000 * 1.5)
  })
})
