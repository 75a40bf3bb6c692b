/**
 * Random but reproducible scenarios for the determinism test (R3): a
 * configuration and a stream of Segment messages with explicit processing
 * times, generated from a seed.
 *
 * Every message gets its own received_at (no two equal): with equal times the
 * persist order breaks ties (R2), so a shuffled run may rightly differ there.
 * Each anonymous id is merged into one user only, and each delivery's events
 * name one person, for the same reason (both follow persist order by design).
 */

/** mulberry32: a tiny seeded PRNG, good enough to shuffle test inputs. */
export function rng(seed: number) {
  let a = seed >>> 0
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const int = (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1))
  const pick = <T>(list: readonly T[]): T => list[int(0, list.length - 1)]
  const chance = (p: number) => next() < p
  const shuffle = <T>(list: readonly T[]): T[] => {
    const out = [...list]
    for (let i = out.length - 1; i > 0; i--) {
      const j = int(0, i)
      ;[out[i], out[j]] = [out[j], out[i]]
    }
    return out
  }
  return { next, int, pick, chance, shuffle }
}

export type Rng = ReturnType<typeof rng>

const DAY = 86_400_000
const HOUR = 3_600_000
export const SCENARIO_START = Date.parse('2026-02-01T00:00:00Z')

/** One or two configuration documents (a second one changes goals: R13 versions). */
export function scenarioConfig(r: Rng): object[] {
  const after = () => r.pick(['delivered', 'opened', 'clicked'])
  const exit = () => r.pick(['on_unmatch', 'on_goal', 'on_goal_or_unmatch', 'never'])
  const doc = (cartWithin: string, total: number) => ({
    segments: [
      { key: 'buyers', match: 'all', conditions: [{ event: 'Order Completed', count: { op: 'gte', value: 2 }, within: '10d' }] },
      { key: 'pro', match: 'all', conditions: [{ attribute: 'plan', op: 'eq', value: 'pro' }] },
      { key: 'pro_buyers', match: 'all', conditions: [{ segment: 'pro', op: 'in' }, { segment: 'buyers', op: 'in' }] },
    ],
    campaigns: [
      {
        key: 'cart',
        name: 'Cart recovery',
        external_ids: ['101'],
        trigger: { event: 'Cart Abandoned', where: { match: 'all', conditions: [{ property: 'total', op: 'gt', value: 0 }] } },
        filters: { match: 'all', conditions: [{ attribute: 'country', op: 'neq', value: 'FR' }] },
        goal: {
          event: 'Order Completed',
          where: {
            match: 'all',
            conditions: [
              { property: 'total', op: 'gt', value: total },
              { property: 'cart_id', op: 'eq', value: { trigger: 'cart_id' } },
            ],
          },
          within: cartWithin,
          after: after(),
          value: 'total',
          effective_from: '2026-01-01T00:00:00Z',
        },
        exit: exit(),
        journey_ttl: `${r.int(5, 25)}d`,
      },
      {
        key: 'upsell',
        name: 'Upsell',
        external_ids: ['202'],
        trigger: { segment: 'pro' },
        goal: { segment: 'buyers', on: 'join', within: '7d', after: after(), effective_from: '2026-01-01T00:00:00Z' },
        exit: exit(),
      },
      {
        key: 'news',
        name: 'Newsletter',
        external_ids: ['303'],
        webhook_conversions: r.chance(0.5),
        goal: { event: 'Order Completed', within: '3d', after: after(), value: 'total', effective_from: '2026-01-01T00:00:00Z' },
        exit: r.pick(['never', 'on_goal']),
      },
    ],
  })
  const first = doc(`${r.int(2, 6)}d`, 10)
  if (!r.chance(0.5)) return [first]
  // R13: a second version of the cart goal, in force from mid-scenario.
  const second = doc(`${r.int(1, 3)}d`, 25) as { campaigns: { goal: { effective_from: string } }[] }
  second.campaigns[0].goal.effective_from = new Date(SCENARIO_START + r.int(5, 15) * DAY).toISOString()
  return [first, second]
}

export interface ScenarioMessage {
  message: Record<string, unknown>
  receivedAt: number
}

/** A stream of Segment messages for a few people, with unique processing times. */
export function scenarioMessages(r: Rng, people = 5): ScenarioMessage[] {
  const used = new Set<number>()
  const at = (base: number) => {
    let t = base
    while (used.has(t)) t += 1
    used.add(t)
    return t
  }
  const out: ScenarioMessage[] = []
  let n = 0
  const emit = (message: Record<string, unknown>, time: number) => {
    const receivedAt = at(Math.round(time))
    out.push({ message: { messageId: `m${++n}`, ...message, receivedAt: new Date(receivedAt).toISOString() }, receivedAt })
  }
  const rand = (spanDays: number) => SCENARIO_START + r.next() * spanDays * DAY

  for (let p = 0; p < people; p++) {
    const userId = `u${p}`
    const anonymousId = r.chance(0.5) ? `a${p}` : null
    const who = () => (anonymousId && r.chance(0.3) ? { anonymousId } : { userId })
    for (let k = r.int(0, 3); k > 0; k--)
      emit({ type: 'identify', userId, traits: { plan: r.pick(['pro', 'free', null]), country: r.pick(['US', 'FR', 'DE']) } }, rand(30))
    if (anonymousId) emit({ type: 'identify', userId, anonymousId, traits: {} }, rand(30))
    for (let k = r.int(0, 2); k > 0; k--)
      emit({ type: 'track', event: 'Cart Abandoned', ...who(), properties: { cart_id: r.pick(['c1', 'c2']), total: r.int(0, 60) } }, rand(30))
    for (let k = r.int(0, 4); k > 0; k--) {
      const deliveryId = `d${p}_${k}`
      const [campaignId, channel] = r.pick([
        ['101', 'Email'],
        ['202', 'Push'],
        ['303', 'Email'],
        ['303', 'Webhook'],
        ['999', 'SMS'],
      ] as const)
      const ids = anonymousId && r.chance(0.3) ? { anonymousId } : { userId }
      let t = rand(30)
      const steps = ({ Email: ['Sent', 'Delivered', 'Opened', 'Link Clicked', 'Bounced'], Push: ['Sent', 'Delivered', 'Opened', 'Bounced'], SMS: ['Sent', 'Delivered', 'Link Clicked'], Webhook: ['Sent', 'Failed'] } as const)[channel]
      for (const step of steps) {
        if (step === 'Bounced' || step === 'Failed' ? !r.chance(0.15) : !r.chance(0.7)) continue
        t += r.next() * 12 * HOUR
        emit({ type: 'track', event: `${channel} ${step}`, ...ids, properties: { delivery_id: deliveryId, campaign_id: campaignId, action_id: `act${k % 2}` } }, t)
      }
    }
    for (let k = r.int(0, 4); k > 0; k--)
      emit({ type: 'track', event: 'Order Completed', ...who(), properties: { total: r.int(1, 60), cart_id: r.pick(['c1', 'c2']) } }, rand(30))
    if (r.chance(0.2)) emit({ type: 'track', event: 'Journey Completed', userId, properties: { campaign_id: r.pick(['101', '202']) } }, rand(30))
  }
  return out.sort((a, b) => a.receivedAt - b.receivedAt)
}
